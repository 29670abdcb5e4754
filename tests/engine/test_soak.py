"""One simulated year, 20 keys, a password change, random transient faults: no key ever expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rig import Rig
from soak_run import orphans, soak


def _assert_healthy(rig: Rig, stats, *, min_rotations: int) -> None:
    assert stats.min_margin > timedelta(days=1), stats.min_margin
    assert min(stats.rotations.values()) >= min_rotations, stats.rotations
    assert orphans(rig) == []
    for key in rig.keys:
        assert rig.works(rig.consumer(key.name))


@pytest.mark.timeout(600)
def test_soak_one_year(rig: Rig):
    """20 keys for 365 virtual days with 3% of Bybit calls failing and a password change."""
    stats = soak(rig, keys_per_sub=10, days=365, fault_rate=0.03, password_change_day=150)
    assert stats.failures > 0  # the faults really happened
    assert stats.password_changes_detected == 1
    assert stats.password_change_rotations >= len(rig.keys)
    # 90-day keys renewed ~14 days early: rotations near days 76, 150 (the change), 226, 302
    _assert_healthy(rig, stats, min_rotations=4)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_soak_three_years(rig: Rig):
    """The long version: run with `pytest -m slow`."""
    stats = soak(rig, keys_per_sub=10, days=3 * 365, fault_rate=0.05, password_change_day=400)
    _assert_healthy(rig, stats, min_rotations=12)
