"""`sub_uids = "all"` in the daemon without a server: what a listing changes and what it reports
(against the simulator and OpenBao: tests/daemon/test_daemon.py)."""

from __future__ import annotations

from types import SimpleNamespace

from daemon_fakes import FakeLease, account
from rotator.config import parse
from rotator.daemon.discovery import discover, managed_sub_uids
from rotator.errors import ExchangeUnavailable
from rotator.model import SubMember
from structlog.testing import capture_logs

CONFIG = """
[bybit]
base_url = "http://127.0.0.1:1"
[vault]
address = "http://127.0.0.1:2"
[vault.auth]
method = "token"
token_env = "T_DISCOVERY_TOKEN"
[[accounts]]
name = "main"
[[key_sets]]
name = "fleet"
name_template = "fleet-{sub_uid}"
account = "main"
sub_uids = "all"
permissions = { Spot = ["SpotTrade"] }
"""


class Exchange:
    def __init__(self, listed):
        self.listed = listed

    def list_sub_members(self, master):
        assert master == "master credentials"
        if isinstance(self.listed, Exception):
            raise self.listed
        return tuple(SubMember(uid=uid) for uid in self.listed)


def main_account():
    a = account("main", FakeLease(held=True))
    a.engine = SimpleNamespace(master_credentials=lambda _name: "master credentials")
    return a


def run(cfg, listed, before):
    return discover(cfg, main_account(), exchange=Exchange(listed), store=None, before=before)


def test_a_listed_sub_account_joins_and_a_vanished_one_is_reported_and_kept():
    cfg = parse(CONFIG, source="t.toml").with_discovered({"fleet": [3001, 3002]})
    assert managed_sub_uids(cfg, "fleet") == [3001, 3002]
    with capture_logs() as logs:
        found = run(cfg, [3001, 3003], {"fleet": [3001, 3002]})
    assert found.changed
    [membership] = found.memberships
    assert membership.sub_uids == (3001, 3002, 3003)  # 3002 stays managed
    assert membership.missing == (3002,)
    events = {e["event"]: e for e in logs}
    assert events["key_set.subs_missing"]["sub_uids"] == [3002]
    assert events["key_set.joined"]["joined"] == [3003]


def test_the_same_listing_changes_nothing_and_a_failed_one_is_logged():
    cfg = parse(CONFIG, source="t.toml").with_discovered({"fleet": [3001]})
    found = run(cfg, [3001], {"fleet": [3001]})
    assert not found.changed
    assert found.memberships[0].missing == ()
    with capture_logs() as logs:
        fewer = run(cfg.with_discovered({"fleet": [3001, 3005]}), [3001], {"fleet": [3001]})
    assert fewer.changed  # the running config has one the set no longer manages
    assert [(e["joined"], e["left"]) for e in logs] == [([], [3005])]
    with capture_logs() as logs:
        assert run(cfg, ExchangeUnavailable("timeout"), {"fleet": [3001]}) is None
    assert [e["event"] for e in logs] == ["key_set.discovery_failed"]
