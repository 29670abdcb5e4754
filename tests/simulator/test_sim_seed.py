"""The seed file, validated by pydantic: every problem names the file and the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rotator.errors import ConfigError
from rotator.simulator import Simulator
from rotator.simulator.seed import apply_seed, load_seed

ACCOUNT = "[[accounts]]\nuid = 1000\napi_key = 'K'\napi_secret = 'S'\nsub_uids = [2001]\n"


def test_a_good_seed_loads_and_applies(tmp_path):
    """Durations, a float given as an integer, an aware datetime kept in UTC, a generated key."""
    path = tmp_path / "seed.toml"
    path.write_text(
        "[options]\nkey_lifetime = '30d'\nhang_max_s = 2\n"
        "rate_limits = { '/v5/user/query-api' = 3 }\n"
        + ACCOUNT
        + "[[accounts.keys]]\nuid = 2001\ncreated_at = 2026-01-01T09:00:00+09:00\n"
    )
    seed = load_seed(path)
    options = seed.simulator_options()
    assert options.key_lifetime == timedelta(days=30)
    assert options.hang_max_s == 2.0
    assert options.rate_limits["/v5/user/query-api"] == 3
    assert options.rate_limits["/v5/user/create-sub-api"] == 1  # merged with the defaults
    assert seed.accounts[0].keys[0].created_at == datetime(2026, 1, 1, tzinfo=UTC)
    sim = Simulator(options=options)
    apply_seed(seed, sim)
    assert len(sim.keys_of(2001)) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "accounts: at least one [[accounts]] table is required"),
        (ACCOUNT.replace("1000", "true"), "accounts[0].uid: Input should be a valid integer"),
        (ACCOUNT.replace("1000", "-1"), "accounts[0].uid: Input should be greater than 0"),
        (ACCOUNT.replace("'K'", "''"), "accounts[0].api_key: String should have at least 1"),
        (ACCOUNT.replace("api_secret = 'S'", ""), "accounts[0].api_secret: required"),
        (ACCOUNT + "rsa_public_key = 'P'\n", "accounts[0]: give api_secret or rsa_public_key"),
        ("[[accounts]]\nuid = 1\n[[accounts]]\n", "accounts[1].uid: required"),
        (ACCOUNT.replace("[2001]", "['x']"), "accounts[0].sub_uids[0]: Input should be a valid"),
        (ACCOUNT + "read_only = 1\n", "accounts[0].read_only: Input should be a valid boolean"),
        (ACCOUNT + "bogus = 1\n", "accounts[0].bogus: unknown field; known: ['api_key'"),
        (
            ACCOUNT + "[[accounts.keys]]\nuid = 2001\napi_key = 'Z'\n",
            "accounts[0].keys[0].api_secret: required",
        ),
        (
            ACCOUNT + "[[accounts.keys]]\nuid = 2001\ncreated_at = 2026-01-01T00:00:00\n",
            "accounts[0].keys[0].created_at: a TOML datetime with offset",
        ),
        ("[options]\nnope = 1\n" + ACCOUNT, "options.nope: unknown option (see docs/simulator.md)"),
        (
            "[options]\nkey_lifetime = 90\n" + ACCOUNT,
            'options.key_lifetime: write a duration like "90d"',
        ),
        ("[options]\nkey_lifetime = '9x'\n" + ACCOUNT, "options.key_lifetime:"),
        (
            "[options]\nmax_keys_per_uid = '20'\n" + ACCOUNT,
            "options.max_keys_per_uid: Input should",
        ),
        ("[options]\nrate_limits = { a = 0 }\n" + ACCOUNT, "options.rate_limits: a table of path"),
        (
            "[options]\nrate_limit_bucket = 'x'\n" + ACCOUNT,
            "options.rate_limit_bucket: Input should be 'caller' or 'target'",
        ),
        ("options = 3\n" + ACCOUNT, "options: Input should be a valid dictionary"),
        ("extra = 1\n" + ACCOUNT, "extra: unknown field"),
    ],
)
def test_bad_seed_names_the_file_and_the_field(tmp_path, text, message):
    """The message is `<file>: <field path>: <what is wrong>`."""
    path = tmp_path / "seed.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_seed(path)
    assert f"{path}: {message}" in str(info.value)


def test_secrets_stay_out_of_seed_errors_and_reprs(tmp_path):
    """A bad seed's message and a loaded seed's repr never show a secret."""
    path = tmp_path / "seed.toml"
    path.write_text(ACCOUNT.replace("'S'", "'TOPSECRETVALUE'") + "uid2 = 1\n")
    with pytest.raises(ConfigError) as info:
        load_seed(path)
    assert "TOPSECRETVALUE" not in str(info.value)
    path.write_text(ACCOUNT.replace("'S'", "'TOPSECRETVALUE'"))
    assert "TOPSECRETVALUE" not in repr(load_seed(path))
