"""The systemd units: `systemd-analyze verify` says nothing, the exposure score stays <= 1.5."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from deploy_tools import DEPLOY, run, tool

UNITS = {
    "rotator.service": "/opt/rotator/bin/rotator",
    "openbao.service": "/opt/openbao/bin/bao",
}
MAX_EXPOSURE = 1.5


def checkable_copy(unit: str, tmp_path: Path) -> Path:
    """The unit with ExecStart's program swapped for a real executable on this machine.

    `verify` fails when ExecStart's program does not exist, and /opt/rotator is the VPS layout.
    Only the program path changes; every other line is checked as shipped.
    """
    shipped = UNITS[unit]
    stand_in = Path(sys.executable).parent / Path(shipped).name  # the venv's rotator / bao
    assert stand_in.exists(), f"{stand_in} is missing: pip install -e '.[dev]'"
    text = (DEPLOY / "systemd" / unit).read_text(encoding="utf-8")
    line = f"ExecStart={shipped} "
    assert text.count(line) == 1, f"{unit}: expected exactly one '{line}...' line"
    copy = tmp_path / unit  # same file name: the unit name matters (credentials path)
    copy.write_text(text.replace(line, f"ExecStart={stand_in} "), encoding="utf-8")
    return copy


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_verifies_without_any_output(unit, tmp_path):
    """`systemd-analyze verify` exits 0 even on typos (it only warns): any output fails."""
    analyze = tool("systemd-analyze")
    result = run(analyze, "verify", checkable_copy(unit, tmp_path), cwd=tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == "", f"systemd-analyze verify {unit} printed:\n{output}"


def exposure(unit_file: Path) -> tuple[float, int, str]:
    analyze = tool("systemd-analyze")
    # --threshold compares against exposure x 10: 15 means "fail above 1.5".
    result = run(
        analyze,
        "security",
        "--offline=yes",
        f"--threshold={int(MAX_EXPOSURE * 10)}",
        unit_file,
        cwd=unit_file.parent,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1)), result.returncode, result.stdout


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_exposure_at_most_1_5(unit, tmp_path):
    score, returncode, report = exposure(checkable_copy(unit, tmp_path))
    failing = "\n".join(line for line in report.splitlines() if line.startswith("✗"))
    assert score <= MAX_EXPOSURE, f"{unit}: exposure {score} > {MAX_EXPOSURE}\n{failing}"
    assert returncode == 0, f"--threshold={int(MAX_EXPOSURE * 10)} rejected {unit} ({score})"


def test_exposure_check_can_fail(tmp_path):
    """The same check on an unhardened unit scores far above the limit (the test has teeth)."""
    bare = tmp_path / "bare.service"
    bare.write_text(f"[Service]\nExecStart={sys.executable} -V\n", encoding="utf-8")
    score, returncode, _ = exposure(bare)
    assert score > MAX_EXPOSURE
    assert returncode != 0


def directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in (DEPLOY / "systemd" / unit).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_rotator_unit_contract():
    """What the daemon and the install guide rely on."""
    d = directives("rotator.service")
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"]
    assert d["Restart"] == ["on-failure"]
    assert d["StartLimitBurst"]
    assert d["StartLimitIntervalSec"]
    assert d["ExecStart"] == ["/opt/rotator/bin/rotator run --config /etc/rotator/rotator.toml"]
    assert d["ConfigurationDirectory"] == ["rotator"]
    assert d["StateDirectory"] == ["rotator"]
    assert d["LoadCredential"] == ["vault-secret-id:/etc/rotator/vault-secret-id"]
    assert "AF_UNIX" in d["RestrictAddressFamilies"][0].split(), "sd_notify needs AF_UNIX"
    assert d["CapabilityBoundingSet"] == [""]
    text = (DEPLOY / "systemd" / "rotator.service").read_text(encoding="utf-8")
    assert "LoadCredentialEncrypted=vault-secret-id:" in text, "document the systemd >= 250 variant"


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_no_score_gaming_with_allow_everything_ip_lists(unit):
    """An IPAddressAllow= of everything lowers the score without restricting anything."""
    d = directives(unit)
    for value in d.get("IPAddressAllow", []):
        assert not {"any", "0.0.0.0/0", "::/0"} & set(value.split()), value
