"""How a CLI command acts on an account without racing the daemon (issue 12, "the CLI asks the
actor"): `rotate`, `password-changed` and `adopt` all go through `carry_out()`.

- Nobody holds the account's lease (no daemon, or it stopped cleanly): the command takes the lease
  itself, renews it on a thread while it works, carries the intent out, and releases it.
- A daemon holds it: the intent is queued in Vault and the holder carries it out; the command waits
  for the outcome and prints it. If the holder stops answering, the command takes the lease over
  once it has lapsed (lease_duration without a renewal) and carries the intent out itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from rotator import wiring
from rotator.config import Config, lease_settings
from rotator.errors import TemporaryError
from rotator.intents import Intent, IntentQueue, execute
from rotator.lease import AccountLease, new_identity

POLL_S = 0.5


def default_wait(cfg: Config) -> timedelta:
    """Long enough for a live daemon to answer, and for a dead one's lease to lapse."""
    le = cfg.leader_election
    return le.lease_duration * 2 + le.retry_period * 2 + timedelta(seconds=60)


def carry_out(
    cfg: Config,
    runtime: wiring.Runtime,
    account: str,
    intent: Intent,
    *,
    show: Callable[[str], None],
    wait: timedelta | None = None,
) -> Intent:
    """Carry `intent` out for `account` the one way that cannot race another actor."""
    acfg = cfg.account(account)
    settings = lease_settings(cfg)
    lease = AccountLease(
        store=runtime.store,
        path=cfg.lease_path(acfg),
        identity=new_identity(f"cli:{intent.requested_by}"),
        settings=settings,
        clock=runtime.clock,
    )
    queue = IntentQueue(runtime.store, cfg.intent_path(acfg))
    if lease.step():
        return _direct(runtime, account, intent, lease, queue=None)
    show(f"the daemon ({lease.holder}) acts on account {account}: asked it to do this")
    queue.submit(intent)
    retry_s = settings.retry_period.total_seconds()
    deadline = time.monotonic() + (wait or default_wait(cfg)).total_seconds()
    next_round = time.monotonic() + retry_s
    while time.monotonic() < deadline:
        found = queue.get(intent.id)
        if found is not None and found.finished:
            return found
        if time.monotonic() >= next_round:
            next_round += retry_s
            if lease.step():
                show(f"the daemon stopped renewing its lease: carrying it out here ({account})")
                return _direct(runtime, account, intent, lease, queue=queue)
        time.sleep(POLL_S)
    raise TemporaryError(
        f"no outcome from the daemon ({lease.holder}) within "
        f"{(wait or default_wait(cfg)).total_seconds():.0f}s; the request stays queued and the "
        "daemon carries it out when it can: see `rotator status` and the daemon's log"
    )


def _direct(
    runtime: wiring.Runtime,
    account: str,
    intent: Intent,
    lease: AccountLease,
    *,
    queue: IntentQueue | None,
) -> Intent:
    """This process holds the lease: renew it on a thread while the engine works."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease.settings.retry_period.total_seconds()):
            lease.step()

    renewer = threading.Thread(target=renew, name="rotator-cli-lease", daemon=True)
    renewer.start()
    runtime.engine.authorities[account] = lease
    try:
        done = execute(runtime.engine, account, intent, by=lease.identity)
        if queue is not None:
            queue.finish(done, runtime.clock.now())
        return done
    finally:
        stop.set()
        renewer.join(timeout=5)
        lease.release()
