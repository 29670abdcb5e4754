"""SIGTERM/SIGINT/SIGHUP as events, and the sleep they interrupt (no real signal, no real wait)."""

from __future__ import annotations

import signal

from rotator.daemon.signals import Signals


def test_signals_stop_reload_and_interruptible_sleep():
    """SIGTERM stops, SIGHUP asks a reload; the sleep reloads on SIGHUP and ends on a stop."""
    now = [0.0]
    signals = Signals(monotonic=lambda: now[0])
    signals.handle(signal.SIGHUP, None)
    assert signals.wake.is_set()
    reloads = []

    def tick():  # time passes, and the wait returns at once: no real sleep
        now[0] += 0.5
        signals.wake.set()

    signals.sleep(2.0, tick=tick, reload=lambda: reloads.append(1))
    assert reloads == [1]
    assert not signals.hup.is_set()
    signals.handle(signal.SIGHUP, None)
    assert signals.take_hup()
    assert not signals.take_hup()
    signals.handle(signal.SIGTERM, None)
    assert signals.stop.is_set()
    signals.hup.set()
    assert not signals.take_hup()  # stopping: no reload
    signals.sleep(100.0, tick=tick, reload=lambda: reloads.append(2))  # returns at once
    assert reloads == [1]
