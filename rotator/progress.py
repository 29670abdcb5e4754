"""Progress: what the engine and the hand-off hooks tell whoever watches a rotation move on.

The engine (rotator/rotation.py) and the hooks (rotator/adapters/hooks.py) call an `Observer` with
one frozen `Progress` record at each milestone of the protocol; `rotator rotate` and
`rotator password-changed` print them (rotator/cli/progress.py), the daemon counts hook failures
from them. The shape is the Bybit client's `RequestObservation`: a record handed to a plain
callable the caller passes in.

Logs are only logs: a log event may be renamed or dropped without changing what an observer sees.
A `ProgressKind`, on the other hand, is an interface: renaming one is a breaking change.

A record holds names, fingerprints, ids of rotations, times and sentences; never a secret and
never a full key id. `detail` passes through the secret registry as a second guard.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from rotator.model import SECRET_REGISTRY

log = structlog.get_logger(__name__)


class ProgressKind(enum.StrEnum):
    """The milestones an observer hears of, in protocol order."""

    PLANNED = "planned"  # a rotation is recorded (reason); nothing created yet
    ORPHAN_DELETED = "orphan_deleted"  # a key we created whose secret never reached Vault, deleted
    KEY_CREATED = "key_created"  # create-sub-api answered; the secret is held as pending
    ROLLED_BACK = "rolled_back"  # the new key was deleted: its secret could not be stored
    VERIFY_FAILED = "verify_failed"  # the new key failed verification and was deleted (detail)
    VERIFIED = "verified"  # the new key answers query-api and matches the spec
    PROMOTED = "promoted"  # consumers read the new key (vault_version)
    HOOK_RAN = "hook_ran"  # one hand-off hook succeeded (detail: what it did)
    HOOK_FAILED = "hook_failed"  # one hand-off hook failed (detail: why); the old key is kept
    HANDOFF_FORCED = "handoff_forced"  # the old key died before the hand-off succeeded (detail)
    HANDED_OFF = "handed_off"  # consumers told; the old key may be revoked from `at`
    COMPLETED = "completed"  # the old key is revoked (old_key_fp), or the first key is in place
    STEP_FAILED = "step_failed"  # a step failed (step, detail); retried from `at`
    CONFLICT = "conflict"  # another writer changed the state record first; backing off


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One milestone. Only `kind` is always set; each kind sets the fields its comment names."""

    kind: ProgressKind
    key: str | None = None  # the managed key's name; None: account-wide (an orphan of no key)
    account: str | None = None  # the account's name in the config
    step: str | None = None  # the protocol step in flight (rotator.state.Step value)
    rotation_id: str | None = None
    reason: str | None = None  # why the rotation started: initial, expiring, forced, ...
    key_fp: str | None = None  # fingerprint of the key acted on (the new key, the orphan)
    old_key_fp: str | None = None  # COMPLETED: the revoked key; None for a key's first rotation
    vault_version: int | None = None  # PROMOTED: the consumer record's version
    at: datetime | None = None  # HANDED_OFF: revocable from; STEP_FAILED: the next try (or None)
    hook: str | None = None  # HOOK_*: file, command, webhook, config_file
    hook_number: int | None = None  # HOOK_*: 1 for the key's first hook, in config order
    detail: str | None = None  # a sentence: the error, or what a hook did

    def __post_init__(self) -> None:
        if self.detail is not None:
            # The second guard, as logs.redact is for log lines: a known secret never leaves.
            object.__setattr__(self, "detail", SECRET_REGISTRY.scrub(self.detail))


Observer = Callable[[Progress], None]
"""Told of each milestone, on the engine's thread, before the engine goes on: keep it quick."""


def ignore(event: Progress) -> None:
    """The default observer: nobody watches."""
    del event


def fan_out(*observers: Observer) -> Observer:
    """One observer that tells each of `observers` in turn; one that fails does not stop the
    others (each is shielded)."""
    told = tuple(shield(o) for o in observers if o is not ignore)
    if not told:
        return ignore
    return told[0] if len(told) == 1 else _FanOut(told)


def shield(observer: Observer) -> Observer:
    """`observer`, but an exception it raises is logged and dropped: watching a rotation must never
    fail it (a closed stdout, a bug in a printer). The Bybit client treats its observer so too."""
    if observer is ignore or isinstance(observer, _Shielded | _FanOut):
        return observer
    return _Shielded(observer)


@dataclass(frozen=True, slots=True)
class _Shielded:
    observer: Observer

    def __call__(self, event: Progress) -> None:
        try:
            self.observer(event)
        except Exception:  # any failure of a watcher: the rotation goes on
            log.warning("progress.observer.failed", kind=event.kind.value, exc_info=True)


@dataclass(frozen=True, slots=True)
class _FanOut:
    observers: tuple[Observer, ...]  # each shielded

    def __call__(self, event: Progress) -> None:
        for observer in self.observers:
            observer(event)
