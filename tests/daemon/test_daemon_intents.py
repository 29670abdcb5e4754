"""The runner's poll without a server: which held accounts have intents to carry out (the
runs themselves: tests/cli/test_intents.py, against OpenBao and the simulator)."""

from __future__ import annotations

from daemon_fakes import FakeLease, account
from rotator.daemon.intents import poll
from rotator.errors import StoreUnavailable
from structlog.testing import capture_logs


class Queue:
    def __init__(self, pending):
        self._pending = pending

    def pending(self):
        if isinstance(self._pending, Exception):
            raise self._pending
        return self._pending


def with_queue(name, *, held, pending):
    a = account(name, FakeLease(held=held))
    a.intents = Queue(pending)
    return a


def test_poll_starts_the_held_accounts_with_pending_intents():
    accounts = [
        with_queue("busy", held=True, pending=["rotate bot1"]),
        with_queue("idle", held=True, pending=[]),
        with_queue("theirs", held=False, pending=["rotate bot2"]),
        with_queue("down", held=True, pending=StoreUnavailable("sealed")),
    ]
    started = []
    with capture_logs() as logs:
        assert poll(accounts, started.append) == 1
    assert started == ["busy"]
    assert [(e["event"], e["account"]) for e in logs] == [("intents.read_failed", "down")]
