"""The pending secret's write to Vault (the only moment a secret exists in memory alone) is tried
4 times, 1, 2 and 4 s apart (rotator.retry), before the new key is deleted on Bybit again."""

from __future__ import annotations

from datetime import timedelta

from rig import Rig
from rotator.errors import StoreUnavailable


class RefusesPending:
    """A store that refuses the first `times` writes carrying a pending secret."""

    def __init__(self, inner, times: int) -> None:
        self.inner = inner
        self.times = times
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def write(self, path, data, *, cas):
        rotation = data.get("rotation") or {}
        if rotation.get("pending") and self.refused < self.times:
            self.refused += 1
            raise StoreUnavailable("Vault sealed")
        return self.inner.write(path, data, cas=cas)


def _rotate_with(rig: Rig, store: RefusesPending) -> tuple[list[float], object]:
    rig.add_key("alpha")
    rig.engine().reconcile()
    rig.clock.advance(timedelta(days=80))
    engine = rig.engine(store=store)
    slept: list[float] = []
    engine._sleep = slept.append
    return slept, engine.reconcile().keys[0]


def test_a_write_that_succeeds_on_the_third_try_waits_1_then_2_seconds(rig: Rig):
    """Two refusals: slept 1 s and 2 s, and the rotation goes on to the grace period with the
    new key created once (and the old one still there until the grace ends)."""
    slept, report = _rotate_with(rig, RefusesPending(rig.store, times=2))
    assert slept == [1.0, 2.0]
    assert report.state == "handed_off"
    assert report.failure is None
    assert len(rig.tagged("alpha")) == 2


def test_a_write_refused_every_time_waits_1_2_4_seconds_then_deletes_the_key(rig: Rig):
    """Four refusals: slept 1, 2, 4 s (none after the last), and the new key is gone."""
    store = RefusesPending(rig.store, times=99)
    slept, report = _rotate_with(rig, store)
    old = rig.consumer("alpha")["api_key"]
    assert slept == [1.0, 2.0, 4.0]
    assert store.refused == 4
    assert report.failure == "vault"
    assert [k.api_key for k in rig.tagged("alpha")] == [old]
