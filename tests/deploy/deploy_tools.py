"""Helpers for the deployment checks: find external tools, run them, load the shipped files.

A check that needs a tool (promtool, amtool, kubectl, systemd-analyze, kubernetes-validate) FAILS
when the tool is missing and CI=true, and is skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCS = REPO / "docs"

# Where each tool comes from, for the failure message.
TOOL_SOURCES = {
    "promtool": "apt-get install prometheus",
    "amtool": "apt-get install prometheus-alertmanager",
    "kubectl": "kubectl with built-in kustomize",
    "systemd-analyze": "apt-get install systemd",
    "kubernetes-validate": "pip install kubernetes-validate",
}


def tool(name: str) -> str:
    """The path of an external tool; fail under CI=true, skip elsewhere, when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    reason = f"{name} is not installed ({TOOL_SOURCES.get(name, 'see docs')})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this check cannot be skipped")
    pytest.skip(reason)
    raise AssertionError  # unreachable: skip() raises


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "SYSTEMD_COLORS": "0", "NO_COLOR": "1"},
    )
