"""One actor per master account: a lease in Vault, and the fencing token that comes with it.

The semantics are those of a Kubernetes Lease as client-go's leader election (and so cert-manager)
uses it, kept in KV v2 with check-and-set, which every deployment already has and which OpenBao's
Raft makes linearizable:

- The record at `<prefix>/leases/<account>` names the holder, a `token` that grows by one at every
  change of holder, and when it was last renewed.
- The holder renews every `retry_period`. A candidate never trusts timestamps written by another
  host's clock: it notes (on its own monotonic clock) when it last saw the record *change*, and
  takes the lease over only once it has seen no change for `lease_duration`.
- The holder starts no side effect once its last successful renewal began more than
  `renew_deadline` ago (monotonic). Since renew_deadline < lease_duration, a holder that is cut off
  (a partition, a frozen VM, a GC pause) stops acting before anyone else may start.

A pause can still fall between the check and the side effect, which is why a side effect also
proves the token against Vault where it matters (`fence_strict`), and why every state write is a
check-and-set carrying the token: a record written with a newer token fences every older holder
out (Kleppmann, "How to do distributed locking"). The argument, step by step, is in
docs/rotation.md ("Fencing").
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

import structlog

from rotator.clock import Clock
from rotator.errors import LeaseLost, RotatorError, StateCorrupt, StoreConflict
from rotator.ports import KeyStore

log = structlog.get_logger(__name__)


def new_identity(base: str | None = None) -> str:
    """host:pid:random: unique per process even where host names repeat (containers, clones)."""
    prefix = base or f"{socket.gethostname()}:{os.getpid()}"
    return f"{prefix}:{secrets.token_hex(3)}"


def identity_pid(identity: str) -> int | None:
    """The pid part of a default identity (tests and `status` use it), or None."""
    parts = identity.split(":")
    if len(parts) >= 3 and parts[-2].isdigit():
        return int(parts[-2])
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseSettings:
    lease_duration: timedelta = timedelta(seconds=60)
    renew_deadline: timedelta = timedelta(seconds=40)
    retry_period: timedelta = timedelta(seconds=15)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """What the lease path holds. Timestamps are the writer's wall clock: for people only."""

    holder: str
    token: int  # the fencing token: +1 at every change of holder, never reused
    acquired_at: datetime
    renewed_at: datetime
    lease_duration_s: float
    released: bool = False  # the holder let go: anyone may take it at once

    def to_record(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "token": self.token,
            "acquired_at": self.acquired_at.isoformat(),
            "renewed_at": self.renewed_at.isoformat(),
            "lease_duration_s": self.lease_duration_s,
            "released": self.released,
        }

    @classmethod
    def from_record(cls, raw: dict[str, Any], what: str) -> Self:
        token, holder = raw.get("token"), raw.get("holder")
        fix = f"{what} is not a lease record; delete it (every replica then re-elects)"
        if not isinstance(token, int) or isinstance(token, bool) or token < 0:
            raise StateCorrupt(fix)
        if not isinstance(holder, str) or not holder:
            raise StateCorrupt(fix)
        try:
            return cls(
                holder=holder,
                token=token,
                acquired_at=datetime.fromisoformat(str(raw["acquired_at"])),
                renewed_at=datetime.fromisoformat(str(raw["renewed_at"])),
                lease_duration_s=float(raw["lease_duration_s"]),
                released=bool(raw.get("released", False)),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise StateCorrupt(fix) from None


class AccountLease:
    """This process's view of one account's lease: acquire, renew, release, and the fence.

    `step()` is one round of the election loop; call it every `retry_period` from one thread.
    `holds()`, `fence()` and `fence_strict()` may be called from any thread.
    """

    def __init__(
        self,
        *,
        store: KeyStore,
        path: str,
        identity: str,
        settings: LeaseSettings,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.path = path
        self.identity = identity
        self.settings = settings
        self.clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token: int | None = None  # our token while we (think we) hold the lease
        self._version: int | None = None  # the version our last write produced
        self._renewed_mono: float | None = None  # when our last successful write *began*
        self._acquired_at: datetime | None = None
        self._seen_version: int | None = None  # another holder's record, as last seen
        self._seen_mono: float | None = None  # when we first saw that version
        self.holder: str | None = None  # who holds it, as far as we know (status, metrics)

    # ------------------------------------------------------------------ the fence
    @property
    def token(self) -> int | None:
        return self._token if self.holds() else None

    def holds(self) -> bool:
        """True while our last successful renewal began less than renew_deadline ago."""
        with self._lock:
            if self._token is None or self._renewed_mono is None:
                return False
            age = self._monotonic() - self._renewed_mono
            return age < self.settings.renew_deadline.total_seconds()

    def fence(self) -> None:
        """Raise LeaseLost unless we hold the lease (local check, no I/O): before state writes,
        whose check-and-set is the second guard."""
        if not self.holds():
            raise LeaseLost(
                f"this process ({self.identity}) does not hold the lease at {self.path}; "
                "the holder carries on"
            )

    def fence_strict(self) -> None:
        """fence(), then prove the token against Vault: before a Bybit create or delete, a
        consumer write or a hook, whose effect no check-and-set can undo."""
        self.fence()
        current = self.store.read(self.path)
        record = None if current is None else LeaseRecord.from_record(current.data, self.path)
        if (
            record is None
            or record.released
            or record.holder != self.identity
            or record.token != self._token
        ):
            with self._lock:
                self._drop("another holder wrote the lease")
            raise LeaseLost(
                f"the lease at {self.path} moved to "
                f"{record.holder if record else 'nobody'}; this process stops acting"
            )
        self.fence()  # the read may have taken long: the deadline still holds

    # ------------------------------------------------------------------ the loop
    def step(self, *, may_acquire: bool = True, patience_s: float = 0.0) -> bool:
        """One election round: renew if we hold it, else observe and maybe take it.

        A free (released, never written) lease is taken once it has looked free for
        `patience_s`; another holder's, once its record has not changed for lease_duration +
        `patience_s`. Replicas pass a patience that grows with the leases they already hold, so
        accounts spread over replicas. Returns whether we hold the lease afterwards. Never raises
        on Vault trouble: the local deadline then decides (an unrenewable lease lapses).
        """
        if self._token is not None and not self.holds():
            with self._lock:  # lapsed: whatever we re-take comes with a new token
                self._drop("renew deadline passed")
        started = self._monotonic()
        try:
            current = self.store.read(self.path)
            record = None if current is None else LeaseRecord.from_record(current.data, self.path)
            version = 0 if current is None else current.version
            if record is not None and record.holder == self.identity and not record.released:
                # Ours: renew; or re-take at once after our own lapse (token + 1 fences out
                # whatever this process still had in flight under the old token).
                renew = record.token == self._token
                if renew or may_acquire:
                    token = record.token if renew else record.token + 1
                    self._write_ours(token, version, started, renew=renew)
            else:
                self._consider(record, version, started, may_acquire, patience_s)
        except StoreConflict:
            # Our write lost: whoever won changed the record, so if we held it, we no longer do.
            log.info("lease.conflict", path=self.path, action="another replica wrote; re-reading")
            with self._lock:
                self._drop("another replica wrote the lease")
        except RotatorError as exc:
            log.warning("lease.step_failed", path=self.path, error=exc.message)
        held = self.holds()
        if not held and self._token is not None:
            with self._lock:
                self._drop("renew deadline passed")
        return held

    def release(self) -> None:
        """Let go (shutdown, end of a CLI command): others may take over at once."""
        with self._lock:
            token, version = self._token, self._version
            self._drop("released")
        if token is None or version is None:
            return
        now = self.clock.now()
        record = LeaseRecord(
            holder=self.identity,
            token=token,
            acquired_at=self._acquired_at or now,
            renewed_at=now,
            lease_duration_s=self.settings.lease_duration.total_seconds(),
            released=True,
        )
        try:
            self.store.write(self.path, record.to_record(), cas=version)
            log.info("lease.released", path=self.path, token=token)
        except RotatorError as exc:  # it lapses by itself
            log.warning("lease.release_failed", path=self.path, error=exc.message)

    # ------------------------------------------------------------------ internals
    def _consider(
        self,
        record: LeaseRecord | None,
        version: int,
        started: float,
        may_acquire: bool,
        patience_s: float,
    ) -> None:
        """Someone else's lease, or a free one: take it once it has not changed for long enough."""
        self.holder = None if record is None or record.released else record.holder
        with self._lock:
            if self._token is not None:
                self._drop(f"{self.holder or 'nobody'} holds it now")
        wait_s = patience_s
        if self.holder is not None:
            wait_s += self.settings.lease_duration.total_seconds()
        if self._unchanged_for(version, started) < wait_s or not may_acquire:
            return
        if self.holder is not None:
            log.warning("lease.expired", path=self.path, holder=self.holder, action="taking over")
        self._write_ours((record.token if record else 0) + 1, version, started)

    def _unchanged_for(self, version: int, started: float) -> float:
        """How long (our monotonic seconds) the record has stayed at `version`."""
        with self._lock:
            if version != self._seen_version or self._seen_mono is None:
                self._seen_version, self._seen_mono = version, started
            return started - self._seen_mono

    def _write_ours(self, token: int, cas: int, started: float, *, renew: bool = False) -> None:
        now = self.clock.now()
        acquired = self._acquired_at if renew and self._acquired_at else now
        record = LeaseRecord(
            holder=self.identity,
            token=token,
            acquired_at=acquired,
            renewed_at=now,
            lease_duration_s=self.settings.lease_duration.total_seconds(),
        )
        version = self.store.write(self.path, record.to_record(), cas=cas)
        with self._lock:
            self._token, self._version, self._renewed_mono = token, version, started
            self._acquired_at = acquired
            self._seen_version, self._seen_mono = None, None
        self.holder = self.identity
        if not renew:
            log.info("lease.acquired", path=self.path, token=token, identity=self.identity)

    def _drop(self, why: str) -> None:
        """Forget that we hold it (caller holds self._lock)."""
        if self._token is not None:
            log.warning("lease.lost", path=self.path, token=self._token, reason=why)
        self._token = self._version = self._renewed_mono = None
        self._acquired_at = None
