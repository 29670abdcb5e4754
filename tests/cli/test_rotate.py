"""`rotator rotate NAME [--force]`: the engine's protocol, step by step, and what happens next."""

from __future__ import annotations

from cli_env import ALPHA_PERMS, DEFAULT_KEYS, Cli, toml_key

STEPS = ("planned", "key_created", "verified", "promoted", "handed_off")


def step_names(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.startswith("  ")]


def test_first_rotation_then_not_due_then_forced(cli: Cli):
    """The first run creates the key (every step shown); a second is refused as not due (exit 0,
    with when); --force rotates again and says the daemon revokes the old key after the grace."""
    first = cli.run("rotate", "alpha")
    assert first.exit_code == 0, first.output
    assert step_names(first.stdout) == [*STEPS, "completed"]
    assert "alpha: rotated." in first.stdout
    record = cli.consumer("alpha")
    old_key = record["api_key"]

    again = cli.run("rotate", "alpha")
    assert again.exit_code == 0
    assert "alpha is not due: rotation starts in 7" in again.stdout
    assert "--force" in again.stdout
    assert cli.consumer("alpha")["api_key"] == old_key

    forced = cli.run("rotate", "alpha", "--force")
    assert forced.exit_code == 0, forced.output
    assert step_names(forced.stdout) == list(STEPS)
    assert "rotation" in forced.stdout
    assert "(forced)" in forced.stdout
    new_key = cli.consumer("alpha")["api_key"]
    assert new_key != old_key
    assert "the daemon (rotator run) revokes it in 23h" in forced.stdout
    assert cli.sim.key(old_key) is not None, "the old key lives through the grace period"


def test_file_hook_runs_like_the_daemon(cli: Cli):
    """rotate hands off through the configured hooks: the file hook writes the key file."""
    target = cli.tmp / "out" / "alpha.env"
    target.parent.mkdir()
    keys = toml_key(
        "alpha",
        2001,
        ALPHA_PERMS,
        f"""
        [[keys.hooks]]
        type = "file"
        path = "{target}"
        """,
    )
    result = cli.run("rotate", "alpha", config=cli.config(keys=keys))
    assert result.exit_code == 0, result.output
    assert f"file {target} written" in result.stdout
    assert cli.consumer("alpha")["api_key"] in target.read_text()


def test_failure_exits_1_with_the_reason(cli: Cli):
    """A sub UID that is not ours: the create step fails; exit 1 with the error and the retry."""
    config = cli.config(keys=DEFAULT_KEYS + toml_key("gamma", 2999, ALPHA_PERMS))
    result = cli.run("rotate", "gamma", config=config)
    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    assert "gamma: rotation FAILING" in result.stdout
    assert "not a sub-account" in result.stdout
    assert "`rotator rotate gamma` retries at once" in result.stdout
    cli.sim.clear_request_log()
    again = cli.run("rotate", "gamma", config=config)
    assert again.exit_code == 1
    assert "FAILED" in again.stdout, "the backoff is skipped: the step is tried again"
    assert any(e.path == "/v5/user/sub-apikeys" for e in cli.sim.request_log)


def test_unknown_name_exits_2_with_known_names(cli: Cli):
    """An unknown key: exit 2, the known names, nothing contacted."""
    cli.sim.clear_request_log()
    result = cli.run("rotate", "nope")
    assert result.exit_code == 2
    assert "known keys: alpha, beta" in result.stderr
    assert cli.sim.request_log == []


def test_name_is_required(cli: Cli):
    """No NAME: click's usage error, exit 2."""
    assert cli.run("rotate").exit_code == 2


def test_vault_down_exit_1(cli: Cli, closed_port_url: str):
    """Vault unreachable: one line, exit 1, no traceback."""
    result = cli.run("rotate", "alpha", config=cli.config(vault_address=closed_port_url))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Vault at")
    assert "Traceback" not in result.output
