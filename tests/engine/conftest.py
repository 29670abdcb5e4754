from __future__ import annotations

import pytest
from rig import make_rig


@pytest.fixture(name="rig")
def _rig(simulator, sim_clock, vault_store, vault_prefix):
    r = make_rig(simulator, sim_clock, vault_store, vault_prefix)
    yield r
    r.close()
