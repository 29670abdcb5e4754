"""`rotator adopt`: a hand-made key taken under management; the secret from stdin or a private
file, never an argument; verified against Bybit before it is stored."""

from __future__ import annotations

from cli_env import ALPHA_PERMS, Cli
from rotator.model import fingerprint, short_key_id


def seed(cli: Cli, **kw):
    return cli.sim.add_key(2001, permissions=kw.pop("permissions", ALPHA_PERMS), **kw)


def test_adopt_from_stdin(cli: Cli):
    """Piped secret: verified, stored at the key's Vault path, status shows it."""
    made = seed(cli)
    result = cli.run("adopt", "alpha", "--key-id", made.api_key, input=made.api_secret + "\n")
    assert result.exit_code == 0, result.output
    assert f"adopted {short_key_id(made.api_key)}" in result.stdout
    assert "the next rotation starts in 7" in result.stdout
    record = cli.consumer("alpha")
    assert record["api_key"] == made.api_key
    assert record["api_secret"] == made.api_secret
    status = cli.run("status", "alpha")
    assert fingerprint(made.api_key) in status.stdout


def test_adopt_from_private_file(cli: Cli):
    """A 0600 file works."""
    made = seed(cli)
    path = cli.tmp / "secret"
    path.write_text(made.api_secret + "\n")
    path.chmod(0o600)
    result = cli.run("adopt", "alpha", "--key-id", made.api_key, "--secret-file", str(path))
    assert result.exit_code == 0, result.output
    assert cli.consumer("alpha")["api_secret"] == made.api_secret


def test_world_readable_file_is_refused(cli: Cli):
    """A 0644 file: exit 2 with the chmod fix; nothing stored, Bybit not asked."""
    made = seed(cli)
    path = cli.tmp / "secret"
    path.write_text(made.api_secret)
    path.chmod(0o644)
    cli.sim.clear_request_log()
    result = cli.run("adopt", "alpha", "--key-id", made.api_key, "--secret-file", str(path))
    assert result.exit_code == 2
    assert "readable by every user" in result.stderr
    assert f"chmod 600 {path}" in result.stderr
    assert cli.store.read(f"{cli.prefix}/keys/alpha") is None
    assert cli.sim.request_log == []


def test_secret_is_never_an_argument(cli: Cli):
    """There is no option that takes the secret itself."""
    made = seed(cli)
    result = cli.run("adopt", "alpha", "--key-id", made.api_key, "--secret", made.api_secret)
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_wrong_secret_exits_1(cli: Cli):
    """Bybit rejects the signature: one line, exit 1, nothing stored."""
    made = seed(cli)
    result = cli.run("adopt", "alpha", "--key-id", made.api_key, input="X" * 36)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert cli.store.read(f"{cli.prefix}/keys/alpha") is None


def test_key_not_matching_the_config_exits_1(cli: Cli):
    """A key with other permissions than the config asks: refused with what differs."""
    made = seed(cli, permissions={"Spot": ["SpotTrade"]})
    result = cli.run("adopt", "alpha", "--key-id", made.api_key, input=made.api_secret)
    assert result.exit_code == 1
    assert "does not match the config" in result.stderr
    assert "ContractTrade" in result.stderr


def test_empty_secret_exits_2(cli: Cli):
    """Nothing on stdin is a usage error."""
    result = cli.run("adopt", "alpha", "--key-id", "ABCDEFGH", input="")
    assert result.exit_code == 2
    assert "the secret is empty" in result.stderr


def test_unknown_key_exits_2(cli: Cli):
    """An unknown key name is a usage error, before any secret is read."""
    result = cli.run("adopt", "nope", "--key-id", "ABCDEFGH", input="whatever-secret")
    assert result.exit_code == 2
    assert "known keys: alpha, beta" in result.stderr
