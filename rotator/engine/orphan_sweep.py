"""The account's orphans (tagged keys no record refers to) judged from the whole picture, and,
when acting, deleted (rotator/orphans.py decides; docs/rotation.md, "Orphans")."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import structlog

from rotator.engine.parts import AccountRun
from rotator.errors import LeaseLost, RotatorError
from rotator.key_report import AccountReport
from rotator.model import ManagedKey, fingerprint
from rotator.orphans import (
    ORPHAN_MIN_AGE,
    AccountRecords,
    Orphan,
    OrphanKind,
    judge_orphans,
    referenced_key_ids,
    sweep,
)
from rotator.progress import Progress, ProgressKind

log = structlog.get_logger(__name__)


def orphans(
    run: AccountRun,
    keys: Sequence[ManagedKey],
    account_keys: Sequence[ManagedKey],
    *,
    act: bool,
) -> AccountReport:
    """Judge (and, when acting, delete) the account's orphans: only from the whole picture.

    A run that looked at some keys (`keys`) of the account's (`account_keys`) only, or failed to
    read some key's state record, judges nothing (orphans=None): a key unknown to a partial view
    may be another key's live key.
    """
    name = run.account.name
    names = frozenset(k.name for k in account_keys)
    if {k.name for k in keys} != names or not names <= run.read_keys:
        return AccountReport(name=name)
    for sub_uid in sorted({k.spec.sub_uid for k in keys} - set(run.listings)):
        with contextlib.suppress(RotatorError):  # unlisted: judged next run, nothing lost
            run.listing(sub_uid)
    to_delete, to_report = judge_orphans(
        run.listings,
        AccountRecords(key_ids=frozenset(run.known), names=names),
        run.parts.bybit_now(),
        ORPHAN_MIN_AGE,
    )
    deleted: tuple[Orphan, ...] = ()
    if act and to_delete:
        deleted = sweep_orphans(run, to_delete, account_keys)
    return _report(name, [*to_delete, *to_report], deleted)


def _report(name: str, found: Sequence[Orphan], deleted: Sequence[Orphan]) -> AccountReport:
    """The account's orphans after this run: those left (and of them, those never deleted), and
    those deleted."""
    gone = {o.key_id for o in deleted}
    left = [o for o in found if o.key_id not in gone]
    kept = [o for o in left if o.kind is not OrphanKind.DELETABLE]
    fps = tuple(sorted(fingerprint(o.key_id) for o in left))
    if left:
        log.warning(
            "orphans.found",
            account=name,
            count=len(left),
            key_fps=fps,
            kept=len(kept),
            action="kept: unknown key names are never deleted"
            if len(kept) == len(left)
            else "a full reconcile deletes keys of configured names",
        )
    return AccountReport(
        name=name,
        orphans=fps,
        orphans_kept=tuple(sorted(fingerprint(o.key_id) for o in kept)),
        orphans_deleted=tuple(sorted(fingerprint(k) for k in gone)),
    )


def sweep_orphans(
    run: AccountRun, to_delete: Sequence[Orphan], account_keys: Sequence[ManagedKey]
) -> tuple[Orphan, ...]:
    """Delete orphans whose secret never reached Vault, re-reading every record first."""
    parts = run.parts

    def referenced() -> frozenset[str]:
        states = [parts.read_state(k)[0] for k in account_keys]
        consumers = [parts.store.read(k.consumer_path) for k in account_keys]
        ids = [c.data.get("api_key") if c else None for c in consumers]
        return referenced_key_ids(states, [i for i in ids if isinstance(i, str)])

    def delete(key_id: str) -> None:
        parts.authority.fence_strict()  # LeaseLost: another actor holds the account now
        parts.exchange.delete_sub_key(run.master, key_id)  # the one orphan delete on Bybit

    deleted: list[Orphan] = []
    for candidate in to_delete:
        try:
            done, _ = sweep([candidate], referenced=referenced, delete=delete)
        except LeaseLost as exc:
            log.info("orphans.sweep.fenced", reason=exc.message)
            break
        except RotatorError as exc:
            run.forget_listing(candidate.sub_uid)  # deleted or not: list again
            log.error(
                "orphan.delete_failed",
                key_fp=fingerprint(candidate.key_id),
                error=exc.message,
                action="judged again at the next full reconcile",
            )
            continue
        deleted.extend(done)
    for orphan in deleted:
        run.unlist(orphan.sub_uid, orphan.key_id)
        log.warning(
            "orphan.deleted",
            key_fp=fingerprint(orphan.key_id),
            rotation_id=orphan.rotation_id,
            key=orphan.key_name,
        )
        run.parts.observer(
            Progress(
                kind=ProgressKind.ORPHAN_DELETED,
                key=orphan.key_name,
                account=run.account.name,
                rotation_id=orphan.rotation_id,
                key_fp=fingerprint(orphan.key_id),
            )
        )
    return tuple(deleted)
