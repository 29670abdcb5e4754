"""A real process killed with SIGKILL between Bybit's create and the Vault write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from rig import Rig

WORKER = Path(__file__).with_name("kill_worker.py")


def test_sigkill_between_create_and_vault_write(rig: Rig, bao):
    """The killed process leaves a tagged key nobody can use; the next engine deletes it and
    completes the rotation with exactly one live key."""
    rig.add_key("alpha")
    rig.engine().reconcile()
    old = rig.consumer("alpha")["api_key"]
    rig.clock.advance(timedelta(days=80))
    args = {
        "now": rig.clock.now().isoformat(),
        "vault": bao.address,
        "bybit": rig.sim.base_url,
        "prefix": rig.prefix,
    }
    env = {**os.environ, "VAULT_TOKEN": bao.root_token}
    result = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "created; dying" in result.stdout
    assert len(rig.tagged("alpha")) == 2  # old + the orphan whose secret died with the process
    orphan = next(k.api_key for k in rig.tagged("alpha") if k.api_key != old)
    assert rig.consumer("alpha")["api_key"] == old  # consumers never saw it

    engine = rig.engine()  # same replica identity, restarted
    rig.clock.advance(timedelta(seconds=5))
    report = engine.reconcile().keys[0]
    assert report.state == "handed_off"
    assert rig.sim.key(orphan) is None
    rig.clock.advance(timedelta(days=1, hours=1))
    engine.reconcile()
    live = rig.tagged("alpha")
    assert [k.api_key for k in live] == [rig.consumer("alpha")["api_key"]]
    assert rig.works(rig.consumer("alpha"))
