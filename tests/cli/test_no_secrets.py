"""No command ever prints a secret (or a full key id): every command of the CLI, in success and
failure, with and without the engine's logs (-v), all their stdout and stderr searched."""

from __future__ import annotations

from cli_env import ALPHA_PERMS, DEFAULT_KEYS, Cli, assert_no_secret, toml_key

from fixtures.simulator import MASTER_KEY, MASTER_SECRET


def test_no_command_prints_a_secret(cli: Cli, closed_port_url: str):
    """Run every command (and its -v form) through a full life cycle; grep all the output for the
    master secret, every key secret Vault ever held, the adopted secret, the Vault token, and every
    value this process wrapped as a Secret; and for the full key ids."""
    gamma = cli.config(keys=DEFAULT_KEYS + toml_key("gamma", 2999, ALPHA_PERMS), name="gamma.toml")
    vault_down = cli.config(vault_address=closed_port_url, name="down.toml")
    made = cli.sim.add_key(2002, permissions={"ContractTrade": ["Order", "Position"]})
    secret_file = cli.tmp / "adopt-secret"
    secret_file.write_text(made.api_secret)
    secret_file.chmod(0o644)
    runs = [
        (("check",), {}),
        (("status", "--json"), {}),
        (("plan", "-v"), {}),
        (("rotate", "alpha", "-v"), {}),
        (("rotate", "alpha", "--force", "-v"), {}),
        (("rotate", "gamma", "-v"), {"config": gamma}),
        (("status", "-v"), {"config": gamma}),
        (("status", "--json", "-v"), {}),
        (("plan", "--at", "+85d", "-v"), {}),
        (("adopt", "beta", "--key-id", made.api_key, "--secret-file", str(secret_file)), {}),
        (("adopt", "beta", "--key-id", made.api_key, "-v"), {"input": "W" * 36}),
        (("adopt", "beta", "--key-id", made.api_key, "-v"), {"input": made.api_secret}),
        (("password-changed", "--account", "main", "--rotate-now", "-v"), {}),
        (("check", "-v"), {}),
        (("status",), {"config": vault_down}),
        (("check", "-v"), {"config": vault_down}),
    ]
    codes = [cli.run(*args, **kw).exit_code for args, kw in runs]
    assert codes == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2, 1, 0, 0, 0, 1, 1]
    assert any("rotation.planned" in out for out in cli.outputs), "-v shows the engine's logs"

    secrets = cli.secrets() | {MASTER_SECRET, made.api_secret, cli.token}
    assert made.api_secret in {cli.consumer("beta")["api_secret"]} | secrets
    assert_no_secret(cli.outputs, secrets)

    key_ids = {MASTER_KEY} | {k.api_key for uid in (2001, 2002) for k in cli.sim.keys_of(uid)}
    assert len(key_ids) >= 5
    text = "\n".join(cli.outputs)
    shown = sorted(k[:4] for k in key_ids if k in text)
    assert not shown, f"full key ids in the output: {shown}"
