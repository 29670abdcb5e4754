"""`rotator password-changed`: recorded, every key due at once, the master key's deadline and the
exact command to store its replacement."""

from __future__ import annotations

import json
import re

from cli_env import Cli

from fixtures.simulator import MASTER_KEY


def test_keys_become_due_and_the_master_deadline_is_shown(cli: Cli, bao):
    """After the change both keys are due now; status agrees; the printed `bao kv put` command
    really stores a master key with the secret from stdin."""
    assert cli.run("rotate", "alpha").exit_code == 0
    assert cli.run("rotate", "beta").exit_code == 0
    result = cli.run("password-changed", "--account", "main")
    assert result.exit_code == 0, result.output
    assert "recorded: the password of account main changed" in result.stdout
    # what is known and what is not, and what this config does about it (issue 11)
    assert "Bybit's pages say its IP-unbound keys stop working" in result.stdout
    assert "the seed guide says all its keys" in result.stdout
    assert 'password_change_scope = "all"' in result.stdout
    due = [
        line.split("\t")
        for line in result.stdout.splitlines()
        if line.startswith(("alpha", "beta"))
    ]
    assert [(row[0], row[1], row[2]) for row in due] == [
        ("alpha", "rotate", "now"),
        ("beta", "rotate", "now"),
    ]
    assert all("password changed" in row[4] for row in due)
    assert "the MASTER key of account main dies" in result.stdout
    status = json.loads(cli.run("status", "--json").stdout)
    assert {k["name"]: k["health"] for k in status["keys"]} == {"alpha": "due", "beta": "due"}
    assert status["accounts"][0]["password_changed_at"] is not None
    assert 6.9 < status["keys"][0]["days_left"] <= 7.0

    command = re.search(
        r"bao kv put (\S+) (\S+) api_key=<NEW KEY ID> (api_secret=-)", result.stdout
    )
    assert command is not None
    mount, path, secret_arg = command.groups()
    assert mount == "-mount=secret"
    assert path == cli.master_path
    bao.bao("kv", "put", mount, path, f"api_key={MASTER_KEY}", secret_arg, stdin="from-stdin-1234")
    stored = cli.store.read(cli.master_path)
    assert stored is not None
    assert stored.data["api_secret"] == "from-stdin-1234"


def test_rotate_now(cli: Cli):
    """--rotate-now rotates every key of the account, step by step, per key."""
    assert cli.run("rotate", "alpha").exit_code == 0
    assert cli.run("rotate", "beta").exit_code == 0
    old = {name: cli.consumer(name)["api_key"] for name in ("alpha", "beta")}
    result = cli.run("password-changed", "--account", "main", "--rotate-now")
    assert result.exit_code == 0, result.output
    assert "alpha: planned" in result.stdout
    assert "(password_change)" in result.stdout
    assert "beta: handed_off" in result.stdout
    for name in ("alpha", "beta"):
        assert cli.consumer(name)["api_key"] != old[name]
        assert f"{name}: new key" in result.stdout


def test_keys_made_after_the_change_are_not_due(cli: Cli):
    """A change recorded before the keys were made does not touch them."""
    assert cli.run("rotate", "alpha").exit_code == 0
    result = cli.run("password-changed", "--account", "main", "--at", "-1h")
    assert result.exit_code == 0
    alpha = next(line for line in result.stdout.splitlines() if line.startswith("alpha"))
    assert alpha.split("\t")[2].startswith("in 7")


def test_unknown_account_exits_2(cli: Cli):
    """An unknown account names the known ones."""
    result = cli.run("password-changed", "--account", "nope")
    assert result.exit_code == 2
    assert "known accounts: main" in result.stderr


def test_future_time_exits_2(cli: Cli):
    """A password change is recorded after it happened."""
    result = cli.run("password-changed", "--account", "main", "--at", "+1d")
    assert result.exit_code == 2
    assert cli.store.read(f"{cli.prefix}/accounts/main/state") is None


def test_vault_down_exit_1(cli: Cli, closed_port_url: str):
    """Vault unreachable: one line, exit 1."""
    result = cli.run(
        "password-changed", "--account", "main", config=cli.config(vault_address=closed_port_url)
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Vault at")
