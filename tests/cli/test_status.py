"""`rotator status`: the table, the JSON schema, the exit codes (healthy 0, failing 1, usage 2)."""

from __future__ import annotations

import json
import time

import pytest
from cli_env import ALPHA_PERMS, DEFAULT_KEYS, Cli, toml_key
from rotator.cli import output
from rotator.model import fingerprint, short_key_id

JSON_KEY_FIELDS = {
    "name",
    "account",
    "sub_uid",
    "key_id_short",
    "key_fp",
    "state",
    "health",
    "expires_at",
    "days_left",
    "renewal_at",
    "next_action",
    "next_at",
    "reason",
    "last_error",
    "escalated",
    "rotations",
    "last_rotation_at",
    "drift",
    "password_change_pending",
}


def test_healthy_keys_exit_0_with_a_row_each(cli: Cli):
    """Both keys created: exit 0; one tab-separated row per key with the short id and days left."""
    assert cli.run("rotate", "alpha").exit_code == 0
    assert cli.run("rotate", "beta").exit_code == 0
    result = cli.run("status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:4] == ["KEY", "ACCOUNT", "SUB UID", "KEY FP"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:3]}
    alpha = cli.consumer("alpha")["api_key"]
    assert rows["alpha"][2] == "2001"
    assert rows["alpha"][3] == fingerprint(alpha)  # the key_fp the logs carry
    assert float(rows["alpha"][5]) == pytest.approx(90, abs=0.1)
    assert rows["alpha"][6] == "idle"
    assert rows["alpha"][7].startswith("rotate in 7")
    assert alpha not in result.output, "key ids are shown shortened only"
    assert "account main: master key ok" in result.stdout


def test_json_schema(cli: Cli):
    """--json: schema_version 1, every documented field, health per key, full key id absent."""
    assert cli.run("rotate", "alpha").exit_code == 0
    result = cli.run("status", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    assert doc["healthy"] is True
    assert set(doc) == {"schema_version", "generated_at", "healthy", "sources", "accounts", "keys"}
    assert doc["sources"] == [
        {"account": "main", "kind": "live", "written_at": None, "holder": None, "stale": False}
    ]
    assert doc["accounts"][0]["name"] == "main"
    assert doc["accounts"][0]["master_ok"] is True
    keys = {k["name"]: k for k in doc["keys"]}
    assert set(keys["alpha"]) == JSON_KEY_FIELDS
    assert keys["alpha"]["health"] == "ok"
    assert keys["alpha"]["key_id_short"] == short_key_id(cli.consumer("alpha")["api_key"])
    assert keys["alpha"]["expires_at"].endswith("Z")
    assert keys["beta"]["health"] == "due"  # not created yet: due, not failing
    assert keys["beta"]["key_id_short"] is None
    assert cli.consumer("alpha")["api_key"] not in result.stdout


def test_only_named_keys(cli: Cli):
    """NAME arguments narrow the report."""
    doc = json.loads(cli.run("status", "beta", "--json").stdout)
    assert [k["name"] for k in doc["keys"]] == ["beta"]


def test_failing_key_exits_1(cli: Cli):
    """A key whose rotation failed (its sub UID is not ours) makes status exit 1 and says why."""
    config = cli.config(keys=DEFAULT_KEYS + toml_key("gamma", 2999, ALPHA_PERMS))
    assert cli.run("rotate", "gamma", config=config).exit_code == 1
    result = cli.run("status", "--json", config=config)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    gamma = next(k for k in doc["keys"] if k["name"] == "gamma")
    assert gamma["health"] == "failing"
    assert gamma["state"] == "failed"
    assert gamma["last_error"]
    assert doc["healthy"] is False
    table = cli.run("status", config=config)
    assert table.exit_code == 1
    row = next(line for line in table.stdout.splitlines() if line.startswith("gamma"))
    assert row.split("\t")[6] == "failing"


def test_account_error_exits_1(cli: Cli, vault_prefix: str):
    """No master key in Vault: the account errors, every key is failing, exit 1, with the fix."""
    cli.store.destroy_versions(cli.master_path, [1])
    result = cli.run("status")
    assert result.exit_code == 1
    assert "account main: FAILING" in result.stdout
    assert "no master key" in result.stdout


def test_unknown_name_exits_2(cli: Cli):
    """An unknown key name is a usage error naming the known keys."""
    result = cli.run("status", "nope")
    assert result.exit_code == 2
    assert "known keys: alpha, beta" in result.stderr


def test_vault_down_one_line_exit_1(cli: Cli, closed_port_url: str):
    """Vault unreachable: one line on stderr, exit 1, no traceback."""
    result = cli.run("status", config=cli.config(vault_address=closed_port_url))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: Vault at {closed_port_url}")
    assert "Traceback" not in result.output


def test_bybit_down_one_line_exit_1(cli: Cli, closed_port_url: str):
    """Bybit unreachable: one line on stderr, exit 1."""
    result = cli.run("status", config=cli.config(bybit_url=closed_port_url, max_retries=0))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: Bybit at {closed_port_url}")


def test_bad_config_exits_2(cli: Cli):
    """A config error is exit 2 with the file named."""
    bad = cli.tmp / "bad.toml"
    bad.write_text("[vault]\naddress = 'nope'\n")
    result = cli.run("status", config=bad)
    assert result.exit_code == 2
    assert str(bad) in result.stderr


def test_tty_gets_an_aligned_table(cli: Cli, monkeypatch: pytest.MonkeyPatch):
    """On a TTY the table is rich's: aligned with spaces, no tabs."""
    monkeypatch.setattr(output, "stdout_is_tty", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    result = cli.run("status")
    assert result.exit_code == 0
    assert "\t" not in result.stdout
    header = result.stdout.splitlines()[0]
    assert "KEY" in header
    assert "SUB UID" in header


def test_status_name_never_calls_another_keys_live_key_an_orphan(cli: Cli):
    """Two keys on one sub UID: `status alpha` judges no orphan (issue 11: it used to tell the
    operator to delete the live key of the other), and `status` finds none either."""
    cli.config(keys=toml_key("alpha", 2001, ALPHA_PERMS) + toml_key("bound", 2001, ALPHA_PERMS))
    assert cli.run("rotate", "alpha").exit_code == 0
    assert cli.run("rotate", "bound").exit_code == 0
    for args in (("status", "alpha"), ("status",)):
        result = cli.run(*args)
        assert result.exit_code == 0, result.output
        assert "tagged" not in result.stdout
        assert "delete" not in result.stdout
    doc = json.loads(cli.run("status", "alpha", "--json").stdout)
    assert doc["accounts"][0]["orphans_judged"] is False
    assert doc["accounts"][0]["orphans"] == []


def test_password_change_shows_as_history_once_keys_rotated(cli: Cli):
    """While keys await their forced rotation status says PASSWORD CHANGED; after, history."""
    assert cli.run("rotate", "alpha").exit_code == 0
    assert cli.run("password-changed", "--account", "main").exit_code == 0
    before = cli.run("status", "alpha")
    assert "PASSWORD CHANGED" in before.stdout
    assert "1 key(s) still to rotate" in before.stdout
    assert cli.run("rotate", "alpha").exit_code == 0
    after = cli.run("status", "alpha")
    assert "PASSWORD CHANGED" not in after.stdout
    assert "last password change" in after.stdout


def test_drift_is_reported_in_the_table_footer_and_json(cli: Cli):
    """The config now wants the key read-only: status --live names the difference (text and
    --json) while on_drift = "alert" leaves the key alone."""
    cli.config(keys=toml_key("alpha", 2001, ALPHA_PERMS))
    assert cli.run("rotate", "alpha").exit_code == 0
    cli.config(
        keys=toml_key("alpha", 2001, ALPHA_PERMS, "read_only = true\n"),
        policy='on_drift = "alert"',
    )
    result = cli.run("status", "--live")
    assert "key alpha: the live key differs from the config (readOnly is 0, wanted 1)" in (
        " ".join(result.stdout.split())
    )
    doc = json.loads(cli.run("status", "--live", "--json").stdout)
    assert doc["keys"][0]["drift"] == ["readOnly is 0, wanted 1"]


def test_live_sweeps_accounts_in_parallel(cli: Cli):
    """`status --live` inspects each account on its own thread: with every query-api answer
    delayed 1.5 s, two accounts take about 1.5 s, not the 3 s of one after the other."""
    keys = (
        toml_key("alpha", 2001, ALPHA_PERMS)
        + f'\n[[accounts]]\nname = "other"\nmaster_key_path = "{cli.master_path}"\n'
        + toml_key("beta", 2002, ALPHA_PERMS).replace('account = "main"', 'account = "other"')
    )
    config = cli.config(keys=keys)
    assert cli.run("rotate", "alpha", config=config).exit_code == 0
    assert cli.run("rotate", "beta", config=config).exit_code == 0
    cli.sim.faults.delay(1.5, path="/v5/user/query-api")
    started = time.monotonic()
    result = cli.run("status", "--live", "--json", config=config)
    elapsed = time.monotonic() - started
    cli.sim.faults.clear()
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [k["name"] for k in doc["keys"]] == ["alpha", "beta"]
    assert {s["account"] for s in doc["sources"]} == {"main", "other"}
    assert elapsed < 2.9, f"the accounts were swept one after the other ({elapsed:.1f} s)"
