"""`rotator check`: config, hooks, Vault (reachability, token, policy) and Bybit (master keys, their
permissions and expiry, sub UIDs), each failure with a fix; exit 1 on any FAIL, 2 on bad config."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from cli_env import ALPHA_PERMS, DEFAULT_KEYS, Cli, restricted_token, toml_key, unique
from rotator.clock import SystemClock
from rotator.simulator import Simulator, SimulatorOptions

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, MASTER_UID, SUB_UIDS

POLICY = Path(__file__).parents[2] / "deploy" / "vault" / "rotator.hcl"


def lines(stdout: str, status: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(status)]


def sim_with_master(serve_sim, **master) -> Simulator:
    sim = Simulator(clock=SystemClock(), options=master.pop("options", None) or SimulatorOptions())
    sim.add_account(
        MASTER_UID,
        MASTER_KEY,
        MASTER_SECRET,
        sub_uids=list(SUB_UIDS),
        ips=master.pop("ips", ["127.0.0.1"]),
        **master,
    )
    return serve_sim(sim)


def test_everything_in_place(cli: Cli):
    """Root token, working master key, real sub UIDs, runnable hooks: exit 0, only ok and the
    least-privilege warning about the writable master path."""
    out_dir = cli.tmp / "out"
    out_dir.mkdir()
    script = cli.tmp / "reload.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    hooks = f"""
        [[keys.hooks]]
        type = "file"
        path = "{out_dir / "alpha.env"}"

        [[keys.hooks]]
        type = "command"
        argv = ["true"]
        timeout = "5s"

        [[keys.hooks]]
        type = "command"
        argv = ["{script}"]
        """
    config = cli.config(
        keys=toml_key("alpha", 2001, ALPHA_PERMS, hooks) + toml_key("beta", 2002, ALPHA_PERMS)
    )
    result = cli.run("check", config=config)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout, "FAIL") == []
    warns = lines(result.stdout, "warn")
    assert len(warns) == 1
    assert "may also overwrite" in warns[0]
    text = result.stdout
    assert "reachable, token accepted" in text
    assert "may do all the daemon needs" in text
    assert "is the master (UID 1000), may manage sub keys; never expires" in text
    assert "key alpha: sub UID 2001 exists" in text
    assert f"directory {out_dir} is writable" in text
    assert f"{script} is executable" in text
    assert "true found at" in text


def test_shipped_policy_passes(cli: Cli, bao):
    """A token holding only deploy/vault/rotator.hcl covers every path (no FAIL) and may not
    overwrite the master key (no warning)."""
    account, name = unique("a"), unique("k")
    master = f"rotator/accounts/{account}/master"
    cli.store.write(master, {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET}, cas=0)
    token = restricted_token(bao, POLICY.read_text())
    config = cli.config(prefix="rotator", account=account, keys=toml_key(name, 2001, ALPHA_PERMS))
    result = cli.run("check", config=config, token=token)
    assert result.exit_code == 0, result.output
    assert lines(result.stdout, "FAIL") == []
    assert lines(result.stdout, "warn") == []


def test_narrow_token_fails_with_the_missing_capabilities(cli: Cli, bao):
    """A token that may only read: every write the daemon needs is a FAIL naming the path."""
    policy = f"""
        path "secret/data/{cli.prefix}/*" {{ capabilities = ["read"] }}
        path "auth/token/lookup-self" {{ capabilities = ["read"] }}
        path "sys/capabilities-self" {{ capabilities = ["update"] }}
        """
    token = restricted_token(bao, policy)
    result = cli.run("check", token=token)
    assert result.exit_code == 1
    fails = "\n".join(lines(result.stdout, "FAIL"))
    assert f"lacks create/update on secret/data/{cli.prefix}/keys/alpha" in fails
    assert f"lacks update on secret/destroy/{cli.prefix}/state/beta" in fails
    assert f"secret/data/{cli.prefix}/accounts/main/master" not in fails, "read is enough there"
    assert "fix: grant it in the token's policy" in result.stdout
    assert "is the master (UID 1000)" in result.stdout, "reading the master key still works"


def test_token_that_cannot_ask_capabilities(cli: Cli, bao):
    """Without sys/capabilities-self the check says so and how to grant it."""
    token = restricted_token(bao, 'path "auth/token/lookup-self" { capabilities = ["read"] }')
    result = cli.run("check", token=token)
    assert result.exit_code == 1
    assert "cannot ask the token's capabilities" in result.stdout
    assert 'path "sys/capabilities-self"' in result.stdout


def test_bad_token(cli: Cli):
    """A token Vault does not know: FAIL with how to get one."""
    result = cli.run("check", token="s.not-a-real-token-at-all")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "give the daemon a valid token" in result.stdout


def test_vault_down(cli: Cli, closed_port_url: str):
    """Vault unreachable: FAIL with the address to fix; master keys skipped; no traceback."""
    result = cli.run("check", config=cli.config(vault_address=closed_port_url))
    assert result.exit_code == 1
    fails = lines(result.stdout, "FAIL")
    assert len(fails) == 1
    assert closed_port_url in fails[0]
    assert f"start/unseal Vault at {closed_port_url}" in result.stdout
    assert "master keys not checked" in result.stdout
    assert "Traceback" not in result.output


def test_bybit_down(cli: Cli, closed_port_url: str):
    """Bybit unreachable: FAIL naming base_url."""
    result = cli.run("check", config=cli.config(bybit_url=closed_port_url, max_retries=0))
    assert result.exit_code == 1
    assert "check [bybit] base_url" in result.stdout


def test_master_without_wallet_permission(cli: Cli, serve_sim):
    """A master key without AccountTransfer/SubMemberTransfer/Withdraw cannot manage sub keys."""
    sim = sim_with_master(serve_sim, permissions={"Spot": ["SpotTrade"]})
    result = cli.run("check", config=cli.config(bybit_url=sim.base_url))
    assert result.exit_code == 1
    fails = lines(result.stdout, "FAIL")
    assert len(fails) == 1
    assert "lacks the permission create-sub-api and delete-sub-api need" in fails[0]
    assert "it has Wallet: none" in fails[0]
    assert "Subaccount Transfer" in result.stdout


def test_read_only_master(cli: Cli, serve_sim):
    """A read-only master key cannot create keys."""
    sim = sim_with_master(serve_sim, read_only=True)
    result = cli.run("check", config=cli.config(bybit_url=sim.base_url))
    assert result.exit_code == 1
    assert "is read-only" in result.stdout


def test_master_expiring_soon_is_a_warning(cli: Cli, serve_sim):
    """An unbound master key with 10 days left: a warning with the fix, still exit 0."""
    sim = sim_with_master(
        serve_sim, ips=None, options=SimulatorOptions(key_lifetime=timedelta(days=10))
    )
    result = cli.run("check", config=cli.config(bybit_url=sim.base_url))
    assert result.exit_code == 0, result.output
    warn = next(line for line in lines(result.stdout, "warn") if "expires" in line)
    assert "(in 9d23h" in warn or "(in 10d" in warn
    assert "cannot renew the master key itself" in warn


def fix_of(stdout: str, line: str) -> str:
    """The fix printed under a check line (the indented lines that follow it)."""
    rest = stdout.split(line, 1)[1].splitlines()[1:]
    return " ".join(x.strip() for x in rest if x.startswith(" "))[:2000]


def test_master_expiry_advice_says_what_is_uncertain_and_follows_the_policy(cli: Cli, serve_sim):
    """The fix never claims bound keys do not expire: it names the disagreement between Bybit's
    pages and the guide, and the assumption of the configured password_change_scope."""
    sim = sim_with_master(
        serve_sim, ips=None, options=SimulatorOptions(key_lifetime=timedelta(days=10))
    )
    for scope, assumed in (
        ("all", 'assumes all keys are affected (password_change_scope = "all")'),
        ("unbound", 'assumes only unbound keys are (password_change_scope = "unbound")'),
    ):
        config = cli.config(
            bybit_url=sim.base_url,
            policy=f'password_change_scope = "{scope}"',
            name=f"{scope}.toml",
        )
        result = cli.run("check", config=config)
        assert result.exit_code == 0, result.output
        text = " ".join(result.stdout.split())
        assert "bound keys do not expire" not in text
        assert "uncertain" in text
        assert assumed in text


def test_clock_offset_is_shown_with_the_ntp_fix(cli: Cli, serve_sim):
    """A host clock 90 s behind Bybit's: a warning naming the offset and how to fix it (NTP)."""
    sim = sim_with_master(serve_sim)
    sim.faults.skew(timedelta(seconds=90))
    result = cli.run("check", config=cli.config(bybit_url=sim.base_url))
    assert result.exit_code == 0, result.output
    warn = next(line for line in lines(result.stdout, "warn") if "clock" in line)
    assert "1m30s behind Bybit's" in warn
    text = " ".join(result.stdout.split())
    assert "timedatectl set-ntp true" in text
    sim.faults.skew(timedelta(0))
    calm = cli.run("check", config=cli.config(bybit_url=sim.base_url))
    assert any(
        line.startswith("ok") and "clock: within" in line for line in calm.stdout.splitlines()
    )


def test_sub_key_stored_as_master(cli: Cli):
    """A sub-account key at the master path: FAIL saying to store the master's key."""
    sub = cli.sim.add_key(2001, permissions={"Wallet": ["AccountTransfer"]})
    cli.store.write(cli.master_path, {"api_key": sub.api_key, "api_secret": sub.api_secret}, cas=1)
    result = cli.run("check")
    assert result.exit_code == 1
    assert "is a sub-account key (UID 2001)" in result.stdout


def test_master_rejected_by_bybit(cli: Cli):
    """A wrong secret: Bybit refuses the master key; the fix shows how to store a new one."""
    cli.store.write(
        cli.master_path, {"api_key": MASTER_KEY, "api_secret": "WRONG" + "0" * 31}, cas=1
    )
    result = cli.run("check")
    assert result.exit_code == 1
    assert "Bybit refuses it" in result.stdout
    assert "api_secret=-" in result.stdout


def test_master_missing_in_vault(cli: Cli):
    """No master record: FAIL with the exact `bao kv put` command (secret from stdin)."""
    cli.store.destroy_versions(cli.master_path, [1])
    result = cli.run("check")
    assert result.exit_code == 1
    assert "no usable record at Vault" in result.stdout
    assert (
        f"bao kv put -mount=secret {cli.master_path} api_key=<KEY ID> api_secret=-" in result.stdout
    )


def test_unknown_sub_uid(cli: Cli):
    """A sub UID that is not the account's: FAIL listing the real ones."""
    config = cli.config(keys=DEFAULT_KEYS + toml_key("gamma", 2999, ALPHA_PERMS))
    result = cli.run("check", config=config)
    assert result.exit_code == 1
    assert "key gamma: sub UID 2999 is not a sub-account of account main" in result.stdout
    assert "this account's sub UIDs: 2001, 2002" in result.stdout


def test_broken_hooks_fail_offline(cli: Cli):
    """A missing command and a file hook into a missing directory FAIL, even --offline."""
    missing_dir = cli.tmp / f"nope-{uuid.uuid4().hex[:6]}"
    hooks = f"""
        [[keys.hooks]]
        type = "command"
        argv = ["no-such-command-{uuid.uuid4().hex[:6]}"]

        [[keys.hooks]]
        type = "file"
        path = "{missing_dir / "alpha.env"}"
        """
    config = cli.config(keys=toml_key("alpha", 2001, ALPHA_PERMS, hooks))
    result = cli.run("check", "--offline", config=config)
    assert result.exit_code == 1
    fails = lines(result.stdout, "FAIL")
    assert len(fails) == 2
    assert "is not on PATH" in fails[0]
    assert f"directory {missing_dir} does not exist" in fails[1]
    assert f"mkdir -p {missing_dir}" in result.stdout


def test_offline_contacts_nothing(cli: Cli, closed_port_url: str):
    """--offline checks config and hooks only: exit 0 with Vault and Bybit unreachable."""
    config = cli.config(vault_address=closed_port_url, bybit_url=closed_port_url)
    result = cli.run("check", "--offline", config=config)
    assert result.exit_code == 0, result.output


def test_bad_config_exits_2(cli: Cli):
    """Config errors stay exit 2."""
    bad = cli.tmp / "bad.toml"
    bad.write_text("[[keys]]\nname = 'x'\n")
    result = cli.run("check", config=bad)
    assert result.exit_code == 2
