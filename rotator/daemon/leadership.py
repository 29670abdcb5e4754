"""Who acts for which account: elections, the lease loop, stuck accounts, followers' snapshots.

Every account has a lease in Vault (rotator/lease.py); only its holder acts on Bybit, notifies
and counts. An election round steps every account's lease once:

- spread: a replica that already holds k leases waits k retry periods before taking a free one
  (and as much longer than lease_duration before taking over a dead holder's), so that accounts,
  and Bybit's per-UID limits with them, spread over replicas;
- stuck: a holder whose run of the account has lasted longer than STUCK_AFTER_S (a bug or a hang
  beyond every timeout) releases the lease and takes it no more while stuck: another replica
  acts, and whatever the stuck thread does next is fenced out;
- followers read the holder's last snapshot (written after each full reconcile) for their
  metrics, `/status` and `rotator status`.

The decisions (`patience_s`, `is_stuck`) are pure; `elect` and `lease_loop` drive the leases.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from rotator.daemon.accounts import AccountRuntime
from rotator.errors import RotatorError
from rotator.key_report import AccountReport, ReconcileResult
from rotator.ports import KeyStore
from rotator.reports import Snapshot

log = structlog.get_logger(__name__)

STUCK_AFTER_S = 900.0  # a run of one account longer than this is "stuck" (RotatorAccountStuck)


def is_stuck(busy_since: float | None, mono: float, limit_s: float = STUCK_AFTER_S) -> bool:
    """Has the run under way (started at monotonic `busy_since`) lasted longer than `limit_s`?"""
    return busy_since is not None and mono - busy_since > limit_s


def patience_s(*, held: int, retry_s: float, spread: bool, holds: bool) -> float:
    """How long this replica waits before taking a lease it does not hold: one retry period per
    lease it already holds (with `spread`), so that accounts spread over replicas."""
    return held * retry_s if spread and not holds else 0.0


@dataclass(frozen=True, slots=True)
class Election:
    """One round's outcome."""

    newly: tuple[str, ...]  # accounts acquired in this round
    leading: dict[str, bool]  # account -> holds its lease after the round


def elect(
    accounts: Iterable[AccountRuntime],
    *,
    spread: bool,
    may_acquire: bool,
    retry_s: float,
    now: datetime,
    mono: float,
    shuffle: Callable[[list[AccountRuntime]], None] = random.shuffle,
) -> Election:
    """Step every account's lease once (in random order: no account is always first)."""
    order = list(accounts)
    shuffle(order)
    held = sum(1 for a in order if a.lease.holds())
    newly = []
    leading = {}
    for account in order:
        was = account.lease.holds()
        stuck = is_stuck(account.busy_since, mono)
        if was and stuck:
            # A run this long is a bug or a hang beyond every timeout: hand the account to
            # another replica (whatever the stuck thread does next is fenced out).
            log.error(
                "lease.abdicated",
                account=account.name,
                run_s=round(mono - account.busy_since, 1) if account.busy_since else None,
                action="released so another replica can act; see RotatorAccountStuck",
            )
            account.lease.release()
        now_held = account.lease.step(
            may_acquire=may_acquire and not stuck,
            patience_s=patience_s(held=held, retry_s=retry_s, spread=spread, holds=was),
        )
        if now_held and not was:
            held += 1
            newly.append(account.name)
            account.held_since = now
        elif was and not now_held:
            held -= 1
            account.held_since = None
        leading[account.name] = now_held
    return Election(newly=tuple(newly), leading=leading)


def lease_loop(
    elect_round: Callable[[], Sequence[str]],
    *,
    acquired: Callable[[str], None],
    stop: threading.Event,
    period_s: float,
) -> None:
    """The election loop, on a thread of its own: a hung account or a full pool never stops the
    renewals; `acquired` is told of each lease newly won (to start its reconcile at once)."""
    while not stop.is_set():
        try:
            newly = elect_round()
        except Exception:  # a bug must not end renewals silently: the lease then lapses
            log.exception("lease.loop_failed")
            newly = ()
        for name in newly:
            acquired(name)
        stop.wait(period_s)


def may_notify(accounts: Iterable[AccountRuntime], identity: str) -> bool:
    """Only the lease holder notifies; during a Vault outage (nobody can renew), the replica
    that held a lease last still does."""
    return any(a.lease.holds() or a.lease.holder == identity for a in accounts)


def read_snapshot(store: KeyStore, account: AccountRuntime) -> Snapshot | None:
    """The holder's last snapshot of `account`, None if there is none or it cannot be read."""
    try:
        current = store.read(account.snapshot_path)
        if current is None:
            return None
        return Snapshot.from_record(current.data, account.snapshot_path)
    except RotatorError as exc:
        log.warning("snapshot.read_failed", account=account.name, error=exc.message)
        return None


def as_result(snap: Snapshot) -> ReconcileResult:
    """A snapshot seen as the reconcile it records (what a follower's metrics observe)."""
    return ReconcileResult(
        started_at=snap.written_at,
        finished_at=snap.written_at,
        keys=snap.keys,
        accounts=(snap.account,),
    )


def write_snapshot(
    store: KeyStore, account: AccountRuntime, result: ReconcileResult, *, holder: str
) -> None:
    """The holder's full view, for followers and `rotator status`. Best effort, fenced."""
    token = account.lease.token
    if token is None:
        return
    snap = Snapshot(
        account=result.accounts[0] if result.accounts else AccountReport(name=account.name),
        keys=tuple(
            replace(k, completed=False, failure=None, step_attempted=False) for k in result.keys
        ),
        written_at=result.finished_at,
        holder=holder,
        token=token,
    )
    try:
        current = store.read(account.snapshot_path)
        if current is not None and int(current.data.get("token") or 0) > token:
            return  # a newer holder wrote it
        account.lease.fence()
        store.write(account.snapshot_path, snap.to_record(), cas=current.version if current else 0)
    except (RotatorError, TypeError, ValueError) as exc:
        log.warning("snapshot.write_failed", account=account.name, error=str(exc)[:200])
