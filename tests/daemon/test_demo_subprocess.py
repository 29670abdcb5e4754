"""`rotator demo --duration 45 --no-status` as CI runs it: real simulator, real OpenBao, real
time. About 47 s: the demo's keys live 60 s and the first rotation with a revoke needs ~35 s."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_demo_runs_rotates_and_exits_cleanly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rotator", "demo", "--duration", "45", "--no-status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"metrics\s+http://127\.0\.0\.1:\d+/metrics", result.stdout)
    env_file = tmp_path / "demo-out" / "bot-alpha.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text().startswith("BYBIT_API_KEY=")
    assert "rotation.completed" in result.stderr
    assert '"reason": "expiring"' in result.stderr  # a real rotation, not only the initial keys
    assert "bybit.key.deleted" in result.stderr  # ... whose old key was revoked
    assert not list(tmp_path.glob("rotator-demo-*"))
