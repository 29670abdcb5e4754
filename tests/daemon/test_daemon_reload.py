"""SIGHUP's pure parts: what left the config, and the file read again with what was found."""

from __future__ import annotations

import pytest
from rotator.config import parse
from rotator.daemon.reload import departed, reload, reread
from rotator.errors import ConfigError
from structlog.testing import capture_logs

BASE = """
[bybit]
base_url = "http://127.0.0.1:1"
[vault]
address = "http://127.0.0.1:2"
[vault.auth]
method = "token"
token_env = "T_RELOAD_TOKEN"
[[accounts]]
name = "main"
[[accounts]]
name = "other"
[[keys]]
name = "bot1"
account = "main"
sub_uid = 2001
permissions = { Spot = ["SpotTrade"] }
"""
BOT2 = """
[[keys]]
name = "bot2"
account = "{account}"
sub_uid = {uid}
permissions = {{ Spot = ["SpotTrade"] }}
"""
FLEET = """
[[key_sets]]
name = "fleet"
name_template = "fleet-{sub_uid}"
account = "main"
sub_uids = "all"
permissions = { Spot = ["SpotTrade"] }
"""


def config(extra="", base=BASE):
    return parse(base + extra, source="t.toml")


def test_departed_names_the_labels_keys_and_accounts_that_left():
    """A key that moves sub UID loses its old series only; a key gone loses all; so does an
    account."""
    old = config(BOT2.format(account="other", uid=2002))
    moved = config(BOT2.format(account="other", uid=2003))
    gone = departed(old, moved)
    assert gone.series == (("bot2", "other", 2002),)
    assert gone.keys == ()
    assert gone.accounts == ()
    without = parse(BASE.replace('[[accounts]]\nname = "other"\n', ""), source="t.toml")
    gone = departed(old, without)
    assert gone.series == (("bot2", "other", 2002),)
    assert gone.keys == ("bot2",)
    assert gone.accounts == ("other",)
    assert departed(old, old).series == ()


def test_reread_keeps_what_the_all_sets_found(tmp_path):
    path = tmp_path / "rotator.toml"
    path.write_text(BASE + FLEET)
    cfg = reread(path, {"fleet": [3001, 3002], "gone": [1]})
    assert sorted(k.name for k in cfg.keys if k.key_set == "fleet") == ["fleet-3001", "fleet-3002"]
    assert [k.name for k in reread(path, {}).keys] == ["bot1"]


def test_reload_rejects_a_bad_file_and_counts_both_outcomes(tmp_path):
    path = tmp_path / "rotator.toml"
    path.write_text("[[keys]]\nname = 'BAD NAME'\n")
    outcomes, applied = [], []
    with capture_logs() as logs:
        assert not reload(path, {}, apply=applied.append, outcome=outcomes.append)
        path.write_text(BASE)
        assert reload(path, {}, apply=applied.append, outcome=outcomes.append)
    assert outcomes == ["rejected", "applied"]
    assert [c.keys[0].name for c in applied] == ["bot1"]
    assert [e["event"] for e in logs] == ["config.reload_rejected", "config.reloaded"]

    def refuse(_cfg):
        raise ConfigError("engines refused it")

    assert not reload(path, {}, apply=refuse, outcome=outcomes.append)
    assert outcomes[-1] == "rejected"


def test_a_bad_base_config_is_a_config_error():
    with pytest.raises(ConfigError):
        config("[[keys]]\nname = 'BAD NAME'\n")
