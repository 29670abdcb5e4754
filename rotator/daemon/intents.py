"""The runner side of what operators ask (`rotator rotate`, `rotator password-changed`, ...).

A CLI command that finds a daemon holding the account's lease queues an intent in Vault
(rotator/intents.py); the holder polls the queues of the accounts it holds and carries each intent
out under the account's lock and lease, on the account's own executor, then records the outcome
for the waiting command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import structlog

from rotator.daemon.accounts import AccountRuntime
from rotator.errors import RotatorError
from rotator.intents import execute
from rotator.key_report import KeyReport

log = structlog.get_logger(__name__)


def poll(accounts: Iterable[AccountRuntime], start: Callable[[str], None]) -> int:
    """`start` the run of each held account with pending intents; returns how many have some."""
    found = 0
    for account in accounts:
        if not account.lease.holds():
            continue
        try:
            pending = account.intents.pending()
        except RotatorError as exc:
            log.warning("intents.read_failed", account=account.name, error=exc.message)
            continue
        if not pending:
            continue
        found += 1
        start(account.name)
    return found


def run(
    account: AccountRuntime,
    *,
    by: str,
    stopped: Callable[[], bool],
    now: Callable[[], datetime],
    monotonic: Callable[[], float],
    reports: Callable[[tuple[KeyReport, ...]], None],
) -> None:
    """Carry out the account's pending intents one by one (the caller holds its lock); stop at a
    stop request or a lost lease. `reports` gets the key reports of each intent done while the
    lease is still held."""
    for intent in account.intents.pending():
        if stopped() or not account.lease.holds():
            return
        log.info("intent.started", intent_id=intent.id, kind=intent.kind.value)
        account.busy_since = monotonic()
        try:
            done = execute(account.engine, account.name, intent, by=by)
        finally:
            account.busy_since = None
        account.intents.finish(done, now())
        log.info(
            "intent.finished", intent_id=intent.id, kind=intent.kind.value, status=done.status.value
        )
        if done.reports and account.lease.holds():
            reports(done.reports)
