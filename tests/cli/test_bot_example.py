"""docs/examples/bot_pybit.py works: a pybit bot follows its key through a rotation without a
restart and acknowledges it, and only then is the old key revoked (ack mode "vault")."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import hvac
from cli_env import ALPHA_PERMS, Cli, toml_key

DOCS = Path(__file__).resolve().parents[2] / "docs"

ACK = """
[keys.ack]
mode = "vault"
max_wait = "72h"
"""


def load_example():
    path = DOCS / "examples" / "bot_pybit.py"
    spec = importlib.util.spec_from_file_location("bot_pybit", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bot_pybit"] = module
    spec.loader.exec_module(module)
    return module


def test_bot_switches_without_restart_and_acknowledges(cli: Cli):
    example = load_example()
    config = cli.config(
        keys=toml_key("alpha", 2001, ALPHA_PERMS, ACK), policy='grace_period = "0s"'
    )
    assert cli.run("rotate", "alpha", config=config).exit_code == 0
    vault = hvac.Client(url=cli.bao.address, token=cli.bao.root_token)
    source = example.VaultSource(vault, "alpha", prefix=cli.prefix)
    bot = example.Bot(source, vault, "alpha", endpoint=cli.sim.base_url, prefix=cli.prefix)
    assert bot.poll() is True
    assert bot.poll() is False  # same key: nothing to do
    old = bot.key.api_key

    forced = cli.run("rotate", "alpha", "--force", config=config)
    assert forced.exit_code == 0, forced.output
    assert "waiting for the consumer to acknowledge" in forced.stdout
    assert cli.sim.key(old) is not None, "no ack yet: the old key stays"
    assert cli.run("rotate", "alpha", config=config).exit_code == 0
    assert cli.sim.key(old) is not None

    assert bot.poll() is True  # the bot follows, proves the new key, acknowledges
    assert bot.key.api_key != old
    revoked = cli.run("rotate", "alpha", config=config)
    assert revoked.exit_code == 0, revoked.output
    assert cli.sim.key(old) is None
    assert bot.session.get_api_key_information()["retCode"] == 0


def test_env_file_source_reads_what_the_file_hook_writes(tmp_path):
    example = load_example()
    path = tmp_path / "bot.env"
    path.write_text('BYBIT_API_KEY="ABCDEFGH1234"\nBYBIT_API_SECRET="s3cr3t-value-xyz"\n')
    key = example.EnvFileSource(path).current()
    assert key.api_key == "ABCDEFGH1234"
    assert key.api_secret == "s3cr3t-value-xyz"
    assert "s3cr3t" not in repr(key)
