"""Config files: good ones load, every kind of bad one gets a message naming file, place and fix."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rotator import __version__, config
from rotator.durations import format_duration, parse_duration
from rotator.errors import ConfigError

from fixtures.configs import GOOD, config_error
from fixtures.processes import run_rotator

ROOT = Path(__file__).resolve().parent.parent


def test_example_and_demo_configs_load():
    """The shipped examples are valid and mean what their comments say."""
    example = config.load(ROOT / "config" / "rotator.example.toml")
    assert example.policy.renew_before == timedelta(days=14)
    assert example.vault.auth.method == "approle"
    assert example.keys[0].hooks[0].type == "file"
    demo = config.load(ROOT / "rotator" / "data" / "demo.toml")
    assert [k.name for k in demo.keys] == ["bot-alpha", "bot-beta"]


def test_defaults_and_derived_paths():
    """Defaults are documented values; paths derive from the prefix."""
    cfg = config.parse(GOOD)
    key = cfg.keys[0]
    assert cfg.policy.grace_period == timedelta(hours=24)
    assert cfg.vault_path(key) == "rotator/keys/bot1"
    assert cfg.state_path(key) == "rotator/state/bot1"
    assert cfg.master_key_path(cfg.accounts[0]) == "rotator/accounts/main/master"
    assert key.spec().permissions == (("ContractTrade", ("Order", "Position")),)
    assert not key.spec().is_ip_bound


def test_per_key_policy_override():
    """[keys.policy] overrides only what it names."""
    cfg = config.parse(GOOD + '[keys.policy]\nrenew_before = "21d"\n')
    policy = cfg.policy_for(cfg.keys[0])
    assert policy.renew_before == timedelta(days=21)
    assert policy.grace_period == timedelta(hours=24)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "[polcy]\n", "unknown option 'polcy'"),
        (GOOD.replace("sub_uid = 2001", "sub_uid = 2001\nsubuid = 3"), "keys[0].subuid"),
        (GOOD.replace('account = "main"', 'account = "mian"'), "names account 'mian'"),
        (GOOD + GOOD.split("\n\n")[1], "key 'bot1' is used twice"),
        (GOOD.replace('"Order", ', '"Order", "Fly", '), "unknown permission ContractTrade.'Fly'"),
        (GOOD.replace("ContractTrade", "Futures"), "unknown permission group 'Futures'"),
        (GOOD.replace('["Order", "Position"]', "[]"), "give at least one permission"),
        (GOOD + "ips = [" + ",".join(f'"10.0.0.{i}"' for i in range(31)) + "]\n", "at most 30"),
        (GOOD + 'ips = ["not-an-ip"]\n', "is not an IP address"),
        (GOOD + '[policy]\nrenew_before = "60d"\nkey_lifetime = "60d"\n', "not shorter than"),
        (GOOD + '[policy]\nrenew_before = "100d"\n', "from 1s to 80d"),
        (GOOD + '[policy]\nrenew_before = "two weeks"\n', "not a duration"),
        (GOOD + "[policy]\nrenew_before = 14\n", "write durations as text"),
        (GOOD + '[vault.auth]\ntoken = "hvs.abc"\n', "secrets never live in the config"),
        (GOOD + '[vault.auth]\nmethod = "approle"\n', "AppRole needs role_id"),
        (GOOD + '[vault]\naddress = "vault:8200"\n', "scheme, host and port"),
        (GOOD.replace('name = "bot1"', 'name = "Bot 1"'), "lower-case"),
        (GOOD + '[[keys.hooks]]\ntype = "file"\npath = "/x"\nmode = 0o644\n', "no access"),
        (GOOD + '[[keys.hooks]]\ntype = "carrier-pigeon"\n', "keys[0].hooks[0]"),
        (GOOD.replace("sub_uid = 2001\n", ""), "required option 'sub_uid' is missing"),
        ("[[accounts]\n", "not valid TOML"),
        (GOOD + '[metrics]\nlisten = "9464"\n', "host:port"),
    ],
)
def test_bad_config_message(text: str, expected: str):
    """Each mistake is reported with the file name, the key path and what to do."""
    message = config_error(text)
    assert message.startswith("rot.toml")
    assert expected in message


def test_error_names_line_of_nth_array_entry():
    """The line number points at the offending entry, not the first one."""
    text = GOOD + GOOD.split("\n\n")[1].replace("bot1", "bot2").replace("Order", "Nope")
    message = config_error(text)
    line = int(message.split(":")[1])
    assert text.splitlines()[line - 1].lstrip().startswith("permissions")
    assert line > 10


def test_too_many_keys_on_one_sub_uid():
    """Rotation needs room for a successor per key: more than 10 keys per sub UID is refused."""
    entries = "".join(GOOD.split("\n\n")[1].replace("bot1", f"bot{i}") + "\n" for i in range(11))
    message = config_error(GOOD.split("\n\n", maxsplit=1)[0] + "\n\n" + entries)
    assert "at most 10 keys per sub UID" in message


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_garbage_never_crashes(text: str):
    """Any text either parses or raises ConfigError: never another exception."""
    try:
        config.parse(text, source="g.toml")
    except ConfigError as exc:
        message = exc.message
    else:
        return
    assert message.startswith("g.toml")


def _nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    # A named function: hypothesis reads the source of `extend` to check that it recurses, and a
    # multi-line lambda's source is not always found (it then warned, and warnings are errors).
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.floats(allow_nan=False),
    _nested,
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["bybit", "vault", "policy", "keys", "accounts", "metrics", "notify", "logging", "x"]
        ),
        toml_values,
        max_size=4,
    )
)
def test_structured_garbage_never_crashes(raw: dict):
    """Well-formed TOML of the wrong shape is a ConfigError too."""
    try:
        config.Config.model_validate(raw)
    except config.ValidationError:
        pass


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)))
def test_duration_roundtrip(delta: timedelta):
    """format_duration and parse_duration are inverse at millisecond precision."""
    delta = timedelta(milliseconds=delta // timedelta(milliseconds=1))
    assert parse_duration(format_duration(delta)) == delta


def test_cli_check_bad_config_exits_2_without_traceback(tmp_path):
    """`rotator check` on a broken file: exit 2, the message, no traceback."""
    bad = tmp_path / "rotator.toml"
    bad.write_text(GOOD.replace("ContractTrade", "Futures"))
    result = run_rotator("check", "--config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr
    assert "Futures" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_check_missing_file_exits_2(tmp_path):
    """A missing config says how to point at one."""
    result = run_rotator("check", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "ROTATOR_CONFIG" in result.stderr


def test_cli_config_from_env(tmp_path):
    """ROTATOR_CONFIG is used when --config is absent."""
    good = tmp_path / "r.toml"
    good.write_text(GOOD)
    result = run_rotator("check", env={**os.environ, "ROTATOR_CONFIG": str(good)})
    assert result.returncode != 2, result.stderr  # the config was found and valid
    assert str(good) in result.stdout


def test_cli_version_and_usage_error():
    """--version prints the version; an unknown command is a usage error (exit 2)."""
    assert __version__ in run_rotator("--version").stdout
    assert run_rotator("no-such-command").returncode == 2
