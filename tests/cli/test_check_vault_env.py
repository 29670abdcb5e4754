"""`rotator check` names where the Vault address came from (the file or VAULT_ADDR) and says
that VAULT_SKIP_VERIFY is ignored; never a token."""

from __future__ import annotations

import pytest
from cli_env import Cli


def _config_without_address(cli: Cli) -> None:
    path = cli.config()
    path.write_text(path.read_text().replace(f'address = "{cli.bao.address}"\n', ""))


def test_check_names_vault_addr(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The address from VAULT_ADDR is used and shown as such; the token is not printed."""
    _config_without_address(cli)
    monkeypatch.setenv("VAULT_ADDR", cli.bao.address)
    result = cli.run("check")
    assert f"vault {cli.bao.address} (from VAULT_ADDR): reachable, token accepted" in result.stdout
    assert "VAULT_SKIP_VERIFY" not in result.stdout
    assert cli.token not in result.output


def test_check_fix_names_the_variable(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, closed_port_url: str
) -> None:
    """Unreachable through VAULT_ADDR: the fix names the variable and the file option."""
    _config_without_address(cli)
    monkeypatch.setenv("VAULT_ADDR", closed_port_url)
    result = cli.run("check")
    assert result.exit_code == 1
    fix = (
        f"fix: start/unseal Vault at {closed_port_url} (from VAULT_ADDR), or fix VAULT_ADDR, or "
        "set [vault] address (it wins)"
    )
    assert fix in result.stdout


def test_check_warns_that_skip_verify_is_ignored(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """VAULT_SKIP_VERIFY does not turn TLS verification off; check says so and names the fix."""
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "1")
    result = cli.run("check")
    warn = [line for line in result.stdout.splitlines() if "VAULT_SKIP_VERIFY" in line]
    assert warn
    assert warn[0].startswith("warn")
    assert "ignored" in warn[0]
    assert f"vault {cli.bao.address}: reachable" in result.stdout  # from the file: no note
