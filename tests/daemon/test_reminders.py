"""Reminders for keys the service must not rotate, on the virtual clock against the real simulator
and OpenBao: each point (14, 7, 1 days) once, remembered in Vault across a daemon restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from handoff_world import close, make_daemon
from rotator.config import parse, tracked_keys
from rotator.errors import ConfigError
from rotator.model import fingerprint
from rotator.reminders import (
    ReminderRecord,
    Reminders,
    after_sending,
    due_point,
    next_point,
)
from rotator.simulator import SimulatorOptions
from structlog.testing import capture_logs

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, SIM_START, new_simulator, rsa_keypair

OTHER_KEY = "OTHERACCOUNTKEY0001"
OTHER_SECRET = "OTHERSECRET000000000000000000000001"
DAY = timedelta(days=1)
POINTS = (14, 7, 1)

CONFIG = """
[bybit]
base_url = "{sim}"
[vault]
address = "{vault}"
prefix = "{prefix}"
[vault.auth]
method = "token"
token_env = "T_HANDOFF_VAULT_TOKEN"
[metrics]
enabled = false
[[notify.channels]]
type = "webhook"
url_env = "T_REMINDER_HOOK"
[[accounts]]
name = "main"
[[tracked]]
name = "main-master"
account = "main"
kind = "master"
[[tracked]]
name = "webui-rsa"
account = "main"
kind = "sub_key"
sub_uid = 2001
key_fp = "{rsa_fp}"
[[tracked]]
name = "other-bot"
account = "other"
kind = "key"
days_before = [3]
"""


# ---------------------------------------------------------------------------------- pure
def test_due_point_is_the_most_urgent_point_reached_and_not_sent():
    expires = datetime(2026, 4, 1, tzinfo=UTC)
    assert due_point(expires, POINTS, (), expires - 15 * DAY) is None
    assert due_point(expires, POINTS, (), expires - 14 * DAY) == 14
    assert due_point(expires, POINTS, (14,), expires - 13 * DAY) is None
    assert due_point(expires, POINTS, (14,), expires - 5 * DAY) == 7
    assert due_point(expires, POINTS, (), expires - 5 * DAY) == 7  # first seen late: 7, not 14
    assert due_point(expires, POINTS, (14, 7), expires + DAY) == 1  # expired: the last one
    assert due_point(expires, POINTS, (14, 7, 1), expires + DAY) is None


def test_after_sending_counts_the_earlier_points_as_done():
    record = ReminderRecord(expires_at=datetime(2026, 4, 1, tzinfo=UTC))
    assert after_sending(record, 7, POINTS) == (14, 7)
    assert after_sending(record, 1, POINTS) == (14, 7, 1)


def test_next_point_and_record_round_trip():
    expires = datetime(2026, 4, 1, tzinfo=UTC)
    assert next_point(expires, POINTS, (14,), expires - 10 * DAY) == (7, expires - 7 * DAY)
    assert next_point(expires, POINTS, (14, 7, 1), expires - 10 * DAY) is None
    record = ReminderRecord(
        expires_at=expires, sent=(14, 7), last_sent_at=expires - 7 * DAY, last_sent_days=7
    )
    assert ReminderRecord.from_record(record.to_record(), "x") == record


# ---------------------------------------------------------------------------------- world
@pytest.fixture(name="world")
def _world(sim_clock, bao, vault_store, vault_prefix, capture, monkeypatch):
    """A master account whose master key is unbound (it expires 90 days after SIM_START), an
    RSA sub key made "in the web UI" 30 days before (it dies first), and another account with no
    master key on file whose bot key's own credentials are in Vault."""
    sim = new_simulator(sim_clock, SimulatorOptions(), master_ips=None)
    sim.add_account(3000, OTHER_KEY, OTHER_SECRET, created_at=SIM_START + 40 * DAY)
    _, pem = rsa_keypair()
    rsa_key = sim.add_key(
        2001, rsa_public_key=pem, note="made in the web UI", created_at=SIM_START - 30 * DAY
    )
    server = sim.serve("127.0.0.1", 0)
    monkeypatch.setenv("T_HANDOFF_VAULT_TOKEN", bao.root_token)
    monkeypatch.setenv("T_REMINDER_HOOK", capture.url)
    vault_store.write(
        f"{vault_prefix}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )
    vault_store.write(
        f"{vault_prefix}/tracked/other-bot",
        {"api_key": OTHER_KEY, "api_secret": OTHER_SECRET},
        cas=0,
    )
    text = CONFIG.format(
        sim=sim.base_url,
        vault=bao.address,
        prefix=vault_prefix,
        rsa_fp=fingerprint(rsa_key.api_key),
    )
    daemons = []

    def start():
        d = make_daemon(text, sim_clock)
        daemons.append(d)
        return d

    expiry = {
        "main-master": sim.key(MASTER_KEY).expires_at,
        "webui-rsa": sim.key(rsa_key.api_key).expires_at,
        "other-bot": sim.key(OTHER_KEY).expires_at,
    }
    yield {
        "start": start,
        "sim": sim,
        "expiry": expiry,
        "text": text,
        "rsa_key": rsa_key.api_key,
    }
    for d in daemons:
        close(d)
    server.close()


def sent(capture) -> list[str]:
    return [r.json["subject"] for r in capture.received]


def tick_at(d, clock, when):
    clock.set(when)
    d.tick()
    assert d.notifier.flush(5.0)


def test_reminders_at_14_7_1_days_once_each_across_a_restart(world, sim_clock, capture):
    """Every tracked kind reminds at its points, each once; a restart in between repeats none,
    because what was sent is in Vault. The master's in-memory thresholds are replaced."""
    expiry = world["expiry"]
    rsa, master, other = expiry["webui-rsa"], expiry["main-master"], expiry["other-bot"]
    assert rsa < master - 14 * DAY  # one after the other: the RSA key dies first
    d = world["start"]()
    tick_at(d, sim_clock, SIM_START)
    assert sent(capture) == []
    tick_at(d, sim_clock, rsa - 14 * DAY + timedelta(hours=1))
    assert sent(capture) == ["webui-rsa:14d"]
    tick_at(d, sim_clock, rsa - 10 * DAY)
    assert sent(capture) == ["webui-rsa:14d"]  # nothing twice

    close(d)  # a restart: nothing of the above is in memory any more
    d = world["start"]()
    tick_at(d, sim_clock, rsa - 9 * DAY)
    assert sent(capture) == ["webui-rsa:14d"]
    tick_at(d, sim_clock, rsa - 7 * DAY + timedelta(minutes=1))
    tick_at(d, sim_clock, rsa - 2 * DAY)
    tick_at(d, sim_clock, rsa - DAY + timedelta(minutes=1))
    tick_at(d, sim_clock, rsa - timedelta(hours=2))
    assert sent(capture) == ["webui-rsa:14d", "webui-rsa:7d", "webui-rsa:1d"]

    for when in (master - 20 * DAY, master - 14 * DAY, master - 13 * DAY, master - 7 * DAY):
        close(d)
        d = world["start"]()  # a restart before every check: still once each
        tick_at(d, sim_clock, when)
    tick_at(d, sim_clock, master - DAY)
    tick_at(d, sim_clock, master - timedelta(minutes=1))
    tick_at(d, sim_clock, other - 3 * DAY)
    tick_at(d, sim_clock, other - 2 * DAY)
    assert sent(capture)[3:] == [
        "main-master:14d",
        "main-master:7d",
        "main-master:1d",
        "other-bot:3d",
    ]
    kinds = {r.json["kind"] for r in capture.received}
    assert kinds == {"tracked_key_expiring"}  # no in-memory master_key_expiring besides
    first_master = capture.received[3].json
    assert first_master["fields"]["expires_at"] == master.isoformat()
    assert "master key of account main" in first_master["title"]


def test_first_seen_late_sends_only_the_most_urgent_point(world, sim_clock, capture):
    master = world["expiry"]["main-master"]
    d = world["start"]()
    tick_at(d, sim_clock, master - 5 * DAY)
    tick_at(d, sim_clock, master - 4 * DAY)
    assert [s for s in sent(capture) if s.startswith("main-master")] == ["main-master:7d"]
    report = d.tracked_reports["main-master"]
    assert (report.next_point, report.next_at) == (1, master - DAY)
    assert report.last_sent_days == 7


def test_a_new_expiry_starts_a_new_round(world, sim_clock, capture, vault_store, vault_prefix):
    """A password change (an earlier expiry) sends the point it brings closer at once; a key
    replaced by hand (a later expiry) has its points count again."""
    master = world["expiry"]["main-master"]
    d = world["start"]()
    tick_at(d, sim_clock, master - 20 * DAY)
    world["sim"].declare_password_change(1000)  # every key of the account dies in 7 days
    tick_at(d, sim_clock, sim_clock.now() + timedelta(hours=1))
    assert sent(capture).count("main-master:7d") == 1
    assert d.tracked_reports["main-master"].expires_at == master - 13 * DAY

    other = world["expiry"]["other-bot"]
    tick_at(d, sim_clock, other - 3 * DAY)
    assert sent(capture).count("other-bot:3d") == 1
    fresh = world["sim"].add_key(3000)  # the operator makes a new key in the web UI
    vault_store.write(
        f"{vault_prefix}/tracked/other-bot",
        {"api_key": fresh.api_key, "api_secret": fresh.api_secret},
        cas=1,
    )
    new_expiry = world["sim"].key(fresh.api_key).expires_at
    tick_at(d, sim_clock, other - 2 * DAY)
    assert d.tracked_reports["other-bot"].expires_at == new_expiry
    assert d.tracked_reports["other-bot"].next_point == 3
    tick_at(d, sim_clock, new_expiry - 3 * DAY)
    assert sent(capture).count("other-bot:3d") == 2


def test_only_the_lease_holder_sends(world, sim_clock, capture):
    """Two replicas: the follower sees the same expiries (the holder's snapshot) but its fence,
    the account's lease, stops it before a claim; after the holder stops, it takes over and
    sends the next point."""
    master = world["expiry"]["main-master"]
    holder, follower = world["start"](), world["start"]()
    tick_at(holder, sim_clock, master - 14 * DAY)
    tick_at(follower, sim_clock, master - 14 * DAY + timedelta(minutes=1))
    assert sorted(sent(capture)) == ["main-master:14d", "webui-rsa:1d"]  # RSA died already
    assert follower.tracked_reports["main-master"].expires_at == master  # holder's snapshot
    tick_at(follower, sim_clock, master - 7 * DAY)
    assert "main-master:7d" not in sent(capture)  # due, but the follower never sends
    report = follower.tracked_reports["main-master"]
    assert report.error == "another replica holds the account's lease: it sends the reminders"
    assert report.expires_at == master
    close(holder)  # a clean stop releases the lease
    tick_at(follower, sim_clock, master - 7 * DAY + timedelta(minutes=1))
    assert sent(capture).count("main-master:7d") == 1
    assert follower.tracked_reports["main-master"].error is None


def test_two_replicas_at_once_send_one_reminder(world, sim_clock, capture, vault_store):
    """Both read "not sent"; the check-and-set write lets one claim it, the other sends nothing."""
    master = world["expiry"]["main-master"]
    d1, d2 = world["start"](), world["start"]()
    sim_clock.set(master - 14 * DAY)
    d1.tick()
    d2.tick()
    cfg = d1.config
    keys = tracked_keys(cfg)[:1]  # the master entry
    real_read = vault_store.read

    class Racing:
        """d2's store: between its read and its write, d1 claims the point."""

        def __getattr__(self, name):
            return getattr(vault_store, name)

        def read(self, path):
            result = real_read(path)
            if path.endswith("/reminders/main-master"):
                Reminders(keys=keys, store=vault_store, exchange=d1.runtime.exchange).run(
                    master - 7 * DAY, dict(d1.account_reports), send=d1.send_reminder
                )
            return result

    Reminders(keys=keys, store=Racing(), exchange=d2.runtime.exchange).run(
        master - 7 * DAY, dict(d2.account_reports), send=d2.send_reminder
    )
    assert d1.notifier.flush(5.0)
    assert d2.notifier.flush(5.0)
    assert sent(capture).count("main-master:7d") == 1


def test_one_broken_entry_does_not_stop_the_others_and_nothing_leaks(
    world, sim_clock, capture, vault_store, vault_prefix
):
    master = world["expiry"]["main-master"]
    vault_store.write(f"{vault_prefix}/tracked/other-bot", {"api_key": OTHER_KEY}, cas=1)
    world["sim"].add_key(2002, note="another web UI key")  # does not match key_fp
    d = world["start"]()
    with capture_logs() as logs:
        tick_at(d, sim_clock, master - 14 * DAY)
    assert "main-master:14d" in sent(capture)
    assert "api_key and api_secret" in d.tracked_reports["other-bot"].error
    page = d.status_page()
    assert "Tracked keys" in page
    assert "webui-rsa" in page
    assert "7 days before" in page  # main-master's next reminder
    dumped = (
        json.dumps(logs, default=str) + page + "".join(r.body.decode() for r in capture.received)
    )
    for secret in (MASTER_KEY, MASTER_SECRET, OTHER_KEY, OTHER_SECRET, world["rsa_key"]):
        assert secret not in dumped


def test_a_sub_key_that_is_gone_is_an_error_on_the_page(world, sim_clock):
    text = world["text"].replace(fingerprint(world["rsa_key"]), "0000000000")
    d = make_daemon(text, sim_clock)
    try:
        sim_clock.set(SIM_START + DAY)
        d.tick()
        assert "no key with key_fp 0000000000" in d.tracked_reports["webui-rsa"].error
        assert d.tracked_reports["main-master"].error is None
        assert "no key with key_fp 0000000000" in d.status_page()
    finally:
        close(d)


# ---------------------------------------------------------------------------------- config
BASE = """
[[accounts]]
name = "main"
[[tracked]]
name = "t"
account = "{account}"
{fields}
"""


@pytest.mark.parametrize(
    ("account", "fields", "message"),
    [
        ("main", 'kind = "sub_key"\nsub_uid = 5', "needs key_fp"),
        ("main", 'kind = "sub_key"\nkey_fp = "0123456789"', "needs sub_uid"),
        ("main", 'kind = "master"\nsub_uid = 5', "takes no sub_uid"),
        ("main", 'kind = "master"\ncredentials_path = "x/y"', "takes no credentials_path"),
        ("main", 'kind = "sub_key"\nsub_uid = 5\nkey_fp = "ABCDEF0123"', "10 lower-case hex"),
        ("main", 'kind = "sub_key"\nsub_uid = 5\nkey_fp = "KEYID123456789012"', "10 lower-case"),
        ("nope", 'kind = "master"', "no [[accounts]] entry defines"),
        ("main", 'kind = "master"\ndays_before = [7, 7]', "listed twice"),
        ("main", 'kind = "master"\ndays_before = [0]', "from 1 to 365"),
        ("main", 'kind = "master"\ndays_before = []', "at least one"),
        ("main", 'kind = "rsa"', "kind"),
        ("main", 'kind = "key"\napi_secret = "x"', "secrets never live in the config"),
    ],
)
def test_tracked_config_is_validated(account, fields, message):
    with pytest.raises(ConfigError) as err:
        parse(BASE.format(account=account, fields=fields), source="t.toml")
    assert message in str(err.value)
    assert "t.toml:" in str(err.value)
    assert "tracked[0]" in str(err.value)


def test_tracked_defaults_and_duplicates():
    cfg = parse(
        BASE.format(account="other", fields='kind = "key"')
        + "[reminders]\ndays_before = [1, 30, 7]\n"
    )
    [key] = tracked_keys(cfg)
    assert key.days_before == (30, 7, 1)
    assert key.credentials_path == "rotator/tracked/t"
    assert key.record_path == "rotator/reminders/t"
    twice = BASE.format(account="main", fields='kind = "master"') + (
        '[[tracked]]\nname = "u"\naccount = "main"\nkind = "master"\n'
    )
    with pytest.raises(ConfigError, match="tracks the same key"):
        parse(twice)


def test_rotator_check_finds_each_tracked_key(world, sim_clock, vault_store, vault_prefix):
    """`rotator check` reads each tracked key's expiry as the reminders job will, and FAILs with
    the fix for one it cannot find."""
    from rotator.cli.check import Checklist, check_tracked  # noqa: PLC0415 (the CLI's module)

    d = world["start"]()
    sim_clock.set(SIM_START + DAY)
    out = Checklist()
    check_tracked(d.config, d.runtime, out)
    assert [i.status for i in out.items] == ["ok", "ok", "ok"]
    rsa = world["expiry"]["webui-rsa"]
    assert f"found, expires {rsa:%Y-%m-%d %H:%M}Z; reminders 14, 7, 1 days before" in (
        out.items[1].text
    )
    vault_store.write(f"{vault_prefix}/tracked/other-bot", {"api_key": OTHER_KEY}, cas=1)
    broken = make_daemon(world["text"].replace(fingerprint(world["rsa_key"]), "0" * 10), sim_clock)
    try:
        out = Checklist()
        check_tracked(broken.config, broken.runtime, out)
    finally:
        close(broken)
    assert [i.status for i in out.items] == ["ok", "FAIL", "FAIL"]
    assert "no key with key_fp 0000000000" in out.items[1].text
    assert "sha256sum" in out.items[1].fix
    assert f"Vault {vault_prefix}/tracked/other-bot" in out.items[2].fix
