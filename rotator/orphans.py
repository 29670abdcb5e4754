"""Orphans: keys on Bybit that carry the rotator's tag but that no record of the account refers to.

A create whose reply was lost, or a crash between create and the Vault write, leaves a key tagged
`rotator:<rotation id>:<key name>` on Bybit whose secret never reached Vault: nobody can hold its
secret, so deleting it harms no one. The one rule (docs/rotation.md, "Orphans"):

- judged only in a *full* run of the account (every configured key's state record read this run);
  a run that looks at some keys only (`status NAME`, `rotate NAME`, due jobs) judges nothing;
- a tagged key of a configured name that no state record (active, previous, pending) and no
  consumer record refers to, and that Bybit says was created more than `ORPHAN_MIN_AGE` ago, is
  deleted in that run (younger: possibly a create in flight whose secret is being written);
- a tagged key of a name the config does not have is reported, never deleted: a removed config
  entry's key may still be in use by a bot;
- a tagged key without a `createdAt` is reported, never deleted (its age cannot be proven).

`judge_orphans` is the pure decision; `sweep` carries out the deletes through the one `delete`
action it is given, re-reading the references right before each delete.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rotator.state import parse_note

if TYPE_CHECKING:
    from rotator.model import ExchangeKey
    from rotator.state import KeyState

# Older than any create in flight could be: a create's reply plus the pending write's retries take
# seconds; a step claim expires after 5 minutes. Measured on Bybit's own `createdAt`.
ORPHAN_MIN_AGE = timedelta(minutes=15)


class OrphanKind(enum.StrEnum):
    """Why a tagged, unreferenced key is (or is not) deleted."""

    DELETABLE = "deletable"  # configured name, old enough: deleted by a full reconcile
    UNKNOWN_NAME = "unknown_name"  # no key of that name in the config: reported, never deleted
    NO_CREATED_AT = "no_created_at"  # Bybit gave no createdAt: age unprovable, reported only


@dataclass(frozen=True, slots=True, kw_only=True)
class Orphan:
    key_id: str  # Bybit's key id; never logged in full (use fingerprint)
    sub_uid: int
    key_name: str  # the name in the tag
    rotation_id: str
    kind: OrphanKind


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRecords:
    """Everything the account's records point at: the yardstick orphans are judged against."""

    key_ids: frozenset[str]  # active, previous, pending of every state record; consumer api_key
    names: frozenset[str]  # every configured key name of the account


def referenced_key_ids(
    states: Iterable[KeyState], consumer_key_ids: Iterable[str | None] = ()
) -> frozenset[str]:
    """Every key id a state record (active, previous, pending) or a consumer record holds."""
    found: set[str] = {k for k in consumer_key_ids if k}
    for state in states:
        pending = state.rotation.pending if state.rotation else None
        found.update(ref.key_id for ref in (state.active, state.previous, pending) if ref)
    return frozenset(found)


def judge_orphans(
    listings: Mapping[int, Iterable[ExchangeKey]],
    records: AccountRecords,
    now: datetime,
    min_age: timedelta = ORPHAN_MIN_AGE,
) -> tuple[tuple[Orphan, ...], tuple[Orphan, ...]]:
    """(to_delete, to_report) among the tagged keys of `listings` (sub UID -> listing).

    Keys no record refers to and younger than `min_age` are in neither: they may be a create in
    flight. `now` must be on Bybit's clock (the host clock corrected by the measured offset), as
    `createdAt` is.
    """
    to_delete: list[Orphan] = []
    to_report: list[Orphan] = []
    for sub_uid, listing in sorted(listings.items()):
        for item in listing:
            tag = parse_note(item.note)
            if tag is None or item.key_id in records.key_ids:
                continue
            if tag.key_name not in records.names:
                kind = OrphanKind.UNKNOWN_NAME
            elif item.created_at is None:
                kind = OrphanKind.NO_CREATED_AT
            elif now - item.created_at < min_age:
                continue  # possibly a create whose secret is being written right now
            else:
                kind = OrphanKind.DELETABLE
            orphan = Orphan(
                key_id=item.key_id,
                sub_uid=sub_uid,
                key_name=tag.key_name,
                rotation_id=tag.rotation_id,
                kind=kind,
            )
            (to_delete if kind is OrphanKind.DELETABLE else to_report).append(orphan)
    return tuple(to_delete), tuple(to_report)


def sweep(
    to_delete: Iterable[Orphan],
    *,
    referenced: Callable[[], frozenset[str]],
    delete: Callable[[str], None],
) -> tuple[tuple[Orphan, ...], tuple[Orphan, ...]]:
    """Delete each orphan unless the records, re-read right before, now refer to it.

    Returns (deleted, spared). `referenced()` re-reads every state and consumer record of the
    account; `delete(key_id)` is the one place a Bybit delete happens (fenced by the caller).
    Exceptions from either propagate: the remaining orphans are judged again next run.
    """
    deleted: list[Orphan] = []
    spared: list[Orphan] = []
    for orphan in to_delete:
        if orphan.key_id in referenced():
            spared.append(orphan)
            continue
        delete(orphan.key_id)
        deleted.append(orphan)
    return tuple(deleted), tuple(spared)
