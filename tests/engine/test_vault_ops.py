"""How many Vault operations one rotation costs (issue 13: reuse what a CAS write returned)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from rig import Rig


class CountingStore:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.ops: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            path = args[0] if args else ""
            kind = "state" if "/state/" in str(path) else "other"
            self.ops[f"{name}:{kind}"] += 1
            return attr(*args, **kwargs)

        return counted


def test_a_rotation_reads_its_state_record_once_per_run(rig: Rig):
    """Each run reads the key's state record once; later steps reuse the version the engine's
    own check-and-set write returned (a newer writer would make the next write fail)."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    rig.clock.advance(timedelta(days=80))
    store = CountingStore(rig.store)
    engine = rig.engine(store=store)
    assert engine.reconcile().keys[0].state == "handed_off"
    # one read at the start of the run, one in each delete guard (none here: nothing deleted)
    assert store.ops["read:state"] == 1, store.ops
    total = sum(store.ops.values())

    assert total <= 16, store.ops  # was 21 before reusing the CAS result (6 state reads)
