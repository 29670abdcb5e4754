"""Is the service alive, and can it act? Probes, the start-up wait, /healthz, /readyz, watchdog.

- `probe`: Vault (reachable, unsealed, authenticated) and Bybit (answers market/time) are pinged
  on a job of their own; the results feed rotator_vault_up / rotator_bybit_up and /readyz.
- Start-up waits for both with a doubling delay (1 s, 2 s, ... 60 s, each within +-20 %) instead
  of crash-looping; the wait is `rotator.retry.retrying` over `STARTUP_BACKOFF`.
- /healthz: alive, and once running, the scheduler runs and its heartbeat is recent; the systemd
  watchdog is fed only while that holds.
- /readyz: Vault answers, one election round is done, every account this replica holds was
  reconciled recently (or taken over recently) and none is stuck. A follower is ready as soon as
  Vault answers: it can take over.

`health` and `readiness` are pure: the daemon hands them what it knows, with `now` and `mono`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from rotator.adapters.sdnotify import SdNotify
from rotator.daemon.accounts import AccountRuntime
from rotator.daemon.leadership import is_stuck
from rotator.daemon.phase import Phase
from rotator.errors import RotatorError
from rotator.retry import Backoff, retrying

log = structlog.get_logger(__name__)

STARTUP_BACKOFF_MIN_S = 1.0
STARTUP_BACKOFF_MAX_S = 60.0
STARTUP_JITTER = 0.2  # each wait is the doubling delay times a factor in [0.8, 1.2]
# The same numbers as a Backoff: a band of [0.8, 1.2] x delay is [2/3, 1] x (1.2 x delay).
STARTUP_BACKOFF = Backoff(
    first=STARTUP_BACKOFF_MIN_S * (1 + STARTUP_JITTER),
    cap=STARTUP_BACKOFF_MAX_S * (1 + STARTUP_JITTER),
    jitter=2 * STARTUP_JITTER / (1 + STARTUP_JITTER),
)
HEARTBEAT_STALE_S = 30.0  # no heartbeat this long: unhealthy, the watchdog stops being fed
READY_FACTOR = 3  # /readyz wants a successful reconcile within 3 x reconcile_interval


@dataclass
class Probe:
    """The last answer of one dependency."""

    ok: bool | None = None  # None: not probed yet
    error: str | None = None
    at: datetime | None = None


def ping(service: str, probe: Probe, call: Callable[[], None], now: datetime) -> bool:
    """Call `call` and record its answer in `probe`; True if it answered. Never raises."""
    error: str | None = None
    try:
        call()
    except RotatorError as exc:
        error = exc.message
    except Exception as exc:  # noqa: BLE001 (a probe must report, never raise)
        error = type(exc).__name__
    was = probe.ok
    probe.ok, probe.error, probe.at = error is None, error, now
    if error is not None:
        log.warning("dependency.unreachable", service=service, error=error)
    elif was is False:
        log.info("dependency.reachable_again", service=service)
    return error is None


def health(
    *, phase: Phase, heartbeat_age_s: float, scheduler_running: bool
) -> tuple[bool, dict[str, Any]]:
    """/healthz: alive, and (once running) the scheduler runs and its heartbeat is recent."""
    detail: dict[str, Any] = {"phase": phase, "heartbeat_age_s": round(heartbeat_age_s, 1)}
    if phase == Phase.RUNNING:
        detail["scheduler_running"] = scheduler_running
        return scheduler_running and heartbeat_age_s < HEARTBEAT_STALE_S, detail
    return True, detail  # starting (waiting for Vault/Bybit is healthy) or stopping


def is_stale(
    last_ok: datetime | None, held_since: datetime | None, now: datetime, limit: timedelta
) -> bool:
    """Is a held account's last good reconcile (or, without one, its takeover) older than
    `limit`?"""
    if last_ok is None:
        return now - (held_since or now) > limit
    return now - last_ok > limit


def readiness(
    *,
    phase: Phase,
    identity: str,
    vault: Probe,
    bybit: Probe,
    elected: bool,
    accounts: Mapping[str, AccountRuntime],
    last_ok: Mapping[str, datetime],
    missing_subs: Mapping[str, list[int]],
    now: datetime,
    mono: float,
    limit: timedelta,
) -> tuple[bool, dict[str, Any]]:
    """/readyz: whether this replica can act, and the details an operator reads."""
    held = {name for name, a in accounts.items() if a.lease.holds()}
    stale = [
        name
        for name, a in accounts.items()
        if name in held and is_stale(last_ok.get(name), a.held_since, now, limit)
    ]
    stuck = [name for name, a in accounts.items() if is_stuck(a.busy_since, mono)]
    detail: dict[str, Any] = {
        "phase": phase,
        "identity": identity,
        "vault": {"ok": vault.ok, "error": vault.error},
        "bybit": {"ok": bybit.ok, "error": bybit.error},
        "last_reconcile": {n: t.isoformat() for n, t in last_ok.items()},
        "leaders": {n: a.lease.holder for n, a in accounts.items()},
        "held_accounts": sorted(held),
        "stale_accounts": stale,
        "stuck_accounts": stuck,
        "key_sets_missing_sub_uids": {k: v for k, v in missing_subs.items() if v},
    }
    ok = phase == Phase.RUNNING and vault.ok is True and elected and not stale and not stuck
    return ok, detail


def wait_for_dependencies(
    *,
    probe: Callable[[], bool],
    unreachable: Callable[[], list[tuple[str, str | None]]],
    sleep: Callable[[float], None],
    stopped: Callable[[], bool],
    beat: Callable[[], None],
    sd: SdNotify,
    draw: Callable[[], float] = random.random,
) -> bool:
    """Probe until `probe` says both answer, backing off (STARTUP_BACKOFF, `sleep` between
    tries); False if `stopped` meanwhile. `unreachable` names the services still down, with why."""
    attempt = 0

    def pause(wait_s: float) -> None:
        waiting = unreachable()
        log.warning(
            "startup.waiting",
            attempt=attempt,
            waiting_for=[name for name, _ in waiting],
            retry_in_s=round(wait_s, 1),
        )
        status = "waiting for " + ", ".join(f"{name} ({error})" for name, error in waiting)
        sd.extend_timeout(timedelta(seconds=wait_s + 30), status=status[:200])
        sleep(wait_s)

    for attempt in retrying(STARTUP_BACKOFF, sleep=pause, draw=draw):  # noqa: B007 (read by pause)
        if stopped():
            return False
        beat()
        if probe():
            return True
    return False  # pragma: no cover (retrying without `tries` never ends by itself)


def watchdog_loop(
    sd: SdNotify, healthy: Callable[[], tuple[bool, dict[str, Any]]], stop: threading.Event
) -> None:
    """Feed the systemd watchdog at half its interval while /healthz says healthy."""
    interval = sd.watchdog_interval
    if interval is None:
        return
    period = interval.total_seconds() / 2
    while not stop.wait(period):
        ok, _ = healthy()
        if ok:
            sd.watchdog()
        else:
            log.error("watchdog.withheld", reason="scheduler heartbeat stale")
