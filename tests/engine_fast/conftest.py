"""Engine tests with no server (see fast_rig.py)."""

from __future__ import annotations

import pytest
from fast_rig import FastRig, make_fast_rig


@pytest.fixture(name="rig")
def _rig() -> FastRig:
    return make_fast_rig()
