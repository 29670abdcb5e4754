"""Config bounds and types (issue 10 item 4): strict ints and bools, a documented range for every
duration, absurd sizes and nesting, Vault paths that would clobber the rotator's own records.
Every bad file is a ConfigError naming the file and field (exit 2 from the CLI), never a
traceback; a hypothesis fuzz over config text holds that for anything."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rotator import config
from rotator.cli import cli
from rotator.errors import ConfigError

from fixtures.configs import GOOD, config_error
from fixtures.processes import run_rotator


def _error(text: str) -> str:
    message = config_error(text)
    for line in message.splitlines():
        assert line.startswith("rot.toml"), message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # strict types: TOML has real booleans and integers
        (GOOD.replace("sub_uid = 2001", "sub_uid = true"), "keys[0].sub_uid"),
        (GOOD.replace("sub_uid = 2001", 'sub_uid = "123456789"'), "keys[0].sub_uid"),
        (GOOD.replace("sub_uid = 2001", "sub_uid = 2001.0"), "keys[0].sub_uid"),
        (GOOD.replace("sub_uid = 2001", "sub_uid = 9223372036854775808"), "keys[0].sub_uid"),
        (GOOD + 'read_only = "yes"\n', "keys[0].read_only"),
        (GOOD + "read_only = 1\n", "keys[0].read_only"),
        ('[bybit]\ntestnet = "true"\n' + GOOD, "bybit.testnet"),
        ('[bybit]\nmax_retries = "3"\n' + GOOD, "bybit.max_retries"),
        ('[metrics]\nenabled = "no"\n' + GOOD, "metrics.enabled"),
        # every duration has a range
        ('[policy]\nrenew_before = "99999999999d"\n' + GOOD, "policy.renew_before"),
        ('[policy]\nrenew_before = "81d"\n' + GOOD, "from 1s to 80d"),
        ('[policy]\nreconcile_interval = "900000000d"\n' + GOOD, "policy.reconcile_interval"),
        ('[policy]\nreconcile_interval = "2d"\n' + GOOD, "from 1s to 1d"),
        ('[policy]\njitter = "1000000w"\n' + GOOD, "policy.jitter"),
        ('[policy]\ngrace_period = "99999999d"\n' + GOOD, "policy.grace_period"),
        ('[policy]\nretry_budget = "99999999d"\n' + GOOD, "policy.retry_budget"),
        ('[policy]\nkey_lifetime = "400d"\n' + GOOD, "policy.key_lifetime"),
        ('[policy]\npassword_change_grace = "31d"\n' + GOOD, "policy.password_change_grace"),
        ('[bybit]\ntimeout = "6m"\n' + GOOD, "bybit.timeout"),
        ('[vault]\ntimeout = "0s"\n' + GOOD, "vault.timeout"),
        ('[notify]\nmin_interval = "8d"\n' + GOOD, "notify.min_interval"),
        ('[leader_election]\nlease_duration = "2h"\n' + GOOD, "leader_election.lease_duration"),
        (GOOD + '[keys.policy]\ngrace_period = "31d"\n', "keys[0].policy.grace_period"),
        ('[policy]\nrenew_before = "' + "9" * 5000 + 'd"\n' + GOOD, "policy.renew_before"),
        (
            GOOD + '[[keys.hooks]]\ntype = "command"\nargv = ["x"]\ntimeout = "10m"\n',
            "keys[0].hooks[0].timeout",
        ),
        # Vault paths
        ('[vault]\nmount = ""\n' + GOOD, "vault.mount"),
        ('[vault]\nmount = "/"\n' + GOOD, "vault.mount"),
        (GOOD + 'vault_path = "rotator/state/other"\n', "inside rotator/state/"),
        (GOOD + 'vault_path = "rotator/accounts/main/master"\n', "keys[0].vault_path"),
        (GOOD + 'vault_path = "rotator/leases/main"\n', "inside rotator/leases/"),
        (GOOD + 'vault_path = "rotator/intents/bot1"\n', "inside rotator/intents/"),
        (GOOD + 'vault_path = "rotator/snapshots/x"\n', "inside rotator/snapshots/"),
        (GOOD + 'vault_path = "rotator/ack"\n', "inside rotator/ack/"),
        (
            GOOD.replace('name = "main"\n', 'name = "main"\nmaster_key_path = "bots/master"\n', 1)
            + 'vault_path = "bots/master"\n',
            "master key record",
        ),
        (
            GOOD.replace(
                'name = "main"\n', 'name = "main"\nmaster_key_path = "rotator/keys/bot1"\n', 1
            ),
            "master key record",
        ),
        # hooks
        (GOOD + '[[keys.hooks]]\ntype = "command"\nargv = [""]\n', "keys[0].hooks[0].argv"),
        (
            GOOD + '[[keys.hooks]]\ntype = "webhook"\nurl = "http://[oops/hook"\n',
            "keys[0].hooks[0]",
        ),
    ],
)
def test_bad_values_name_file_and_field(text, expected):
    """Each value out of type or range is refused, naming the file and the field."""
    assert expected in _error(text)


def test_in_range_values_and_other_paths_still_load():
    """The bounds leave every documented and demo value alone."""
    cfg = config.parse(
        '[policy]\nrenew_before = "80d"\nkey_lifetime = "365d"\ngrace_period = "30d"\n'
        'jitter = "7d"\nretry_budget = "30d"\nreconcile_interval = "1d"\n'
        '[vault]\nmount = "kv"\n' + GOOD + 'vault_path = "rotator/keys-shared/bot1"\n'
    )
    assert cfg.policy.renew_before == timedelta(days=80)
    assert cfg.vault.mount == "kv"
    assert cfg.vault_path(cfg.keys[0]) == "rotator/keys-shared/bot1"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x = " + "[" * 3000 + "]" * 3000 + "\n" + GOOD, id="3000-deep-array"),
        pytest.param("x = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n" + GOOD, id="3000-deep-table"),
        pytest.param("[bybit]\nmax_retries = " + "9" * 5000 + "\n" + GOOD, id="5000-digit-int"),
        pytest.param(GOOD + "ips = " + "[" * 500 + "]" * 500 + "\n", id="deep-in-a-field"),
    ],
)
def test_absurd_toml_is_a_config_error(text):
    """Nesting thousands deep and integers past Python's digit limit: one ConfigError."""
    _error(text)


def test_oversized_file_is_refused(tmp_path):
    big = tmp_path / "rotator.toml"
    big.write_text(GOOD + "# " + "x" * (config.MAX_CONFIG_BYTES + 1) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        config.load(big)


# ------------------------------------------------------------------------ the CLI, for real
ISSUE_CASES = [
    '[policy]\nrenew_before = "99999999999d"\n' + GOOD,
    "x = " + "[" * 3000 + "]" * 3000 + "\n" + GOOD,
    "[bybit]\nmax_retries = " + "9" * 5000 + "\n" + GOOD,
    '[policy]\nreconcile_interval = "900000000d"\n' + GOOD,
    '[policy]\njitter = "1000000w"\n' + GOOD,
    GOOD.replace("sub_uid = 2001", "sub_uid = true"),
    GOOD + 'vault_path = "rotator/state/bot2"\n',
]


def test_rotator_check_on_the_issue_configs_exits_2_with_one_line(tmp_path):
    """The files of issue 10, through the real `rotator check` process: exit 2, one line naming
    the file, no traceback."""
    for i, text in enumerate(ISSUE_CASES):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        result = run_rotator("check", "--config", str(path))
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "Traceback" not in output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, output
        assert lines[0].startswith(f"error: {path}"), output


# ------------------------------------------------------------------------ fuzz
NASTY = st.one_of(
    st.integers().map(str),
    st.sampled_from(
        [
            "true",
            '"yes"',
            '""',
            '"/"',
            '"0s"',
            '"99999999999d"',
            '"1000000w"',
            '"-1d"',
            '"' + "9" * 5000 + 'd"',
            "9" * 5000,
            "[" * 2000 + "]" * 2000,
            "{a=" * 100 + "1" + "}" * 100,
            "1e400",
            "nan",
            "inf",
            "1979-05-27T07:32:00Z",
            '"rotator/state/x"',
            '"rotator/accounts/main/master"',
            '"http://[oops/hook"',
            '["", "x"]',
            '"' + "a" * 10000 + '"',
        ]
    ),
    st.text(max_size=20).map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
)
FIELDS = st.sampled_from(
    [
        ("", "sub_uid"),
        ("", "read_only"),
        ("", "vault_path"),
        ("", "ips"),
        ("", "permissions"),
        ("", "name"),
        ("[policy]", "renew_before"),
        ("[policy]", "grace_period"),
        ("[policy]", "reconcile_interval"),
        ("[policy]", "jitter"),
        ("[policy]", "retry_budget"),
        ("[policy]", "key_lifetime"),
        ("[bybit]", "timeout"),
        ("[bybit]", "max_retries"),
        ("[bybit]", "testnet"),
        ("[bybit]", "base_url"),
        ("[vault]", "mount"),
        ("[vault]", "prefix"),
        ("[vault]", "address"),
        ("[metrics]", "listen"),
        ("[leader_election]", "renew_deadline"),
        ("[[keys.hooks]]", "timeout"),
        ("[[keys.hooks]]", "url"),
        ("[[keys.hooks]]", "argv"),
    ]
)


def _config_text(edits: list[tuple[tuple[str, str], str]]) -> str:
    """GOOD with each (table, field) set to a nasty value; key-level fields go in [[keys]]."""
    text = GOOD
    tables: dict[str, list[str]] = {}
    for (table, field), value in edits:
        if table == "":
            text = "\n".join(
                line for line in text.splitlines() if not line.startswith(f"{field} =")
            )
            text += f"\n{field} = {value}\n"
        else:
            tables.setdefault(table, []).append(f"{field} = {value}")
    for table, lines in tables.items():
        body = "\n".join(dict.fromkeys(lines))
        if table == "[[keys.hooks]]":
            text += f'\n[[keys.hooks]]\ntype = "webhook"\n{body}\n'
        else:
            text = f"{table}\n{body}\n\n" + text
    return text


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(FIELDS, NASTY), min_size=1, max_size=4))
def test_fuzzed_config_is_valid_or_one_config_error(tmp_path_factory, edits):
    """Any config text: `config.load` returns a Config or raises ConfigError naming the file on
    every line; nothing else escapes (RecursionError, OverflowError, ValueError...)."""
    path = tmp_path_factory.mktemp("fuzz") / "rotator.toml"
    path.write_text(_config_text(edits))
    try:
        config.load(path)
    except ConfigError as exc:
        message = exc.message
    else:
        return
    for line in message.splitlines():
        assert line.startswith(str(path)), message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(FIELDS, NASTY), min_size=1, max_size=3))
def test_fuzzed_config_through_rotator_check(tmp_path_factory, edits):
    """The same through `rotator check --config` (in-process): a bad file exits 2, printing no
    traceback; a file that loads never exits 2."""
    path = tmp_path_factory.mktemp("fuzz") / "rotator.toml"
    path.write_text(_config_text(edits))
    try:
        config.load(path)
    except ConfigError:
        pass
    else:
        return  # a valid file: `check` would go on to Vault and Bybit, not this test's subject
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert str(path) in result.output


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * 5000 + "]" * 5000, "x = " + "9" * 5000],
    ids=["nested-5000-deep", "5000-digit-integer"],
)
def test_a_monster_value_is_named_with_the_fix(text: str) -> None:
    message = config_error(text, source="r.toml")
    assert message.startswith("r.toml: cannot read it as a config (")
    assert "keep values short and nesting shallow" in message
