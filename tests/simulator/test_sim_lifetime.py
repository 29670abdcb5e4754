"""Key lifetimes on the simulator's clock: status, deadlineDay, expiredAt, password changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rotator.clock import ManualClock
from rotator.simulator import KeyStatus, SimulatorOptions

from fixtures.simulator import MASTER_UID, SIM_START, SimClient, new_simulator

LIST = "/v5/user/sub-apikeys"
QUERY_API = "/v5/user/query-api"
DAY = timedelta(days=1)


def listed(master, api_key):
    items = master.get(LIST, {"subMemberId": 2001}).json()["result"]["result"]
    return next(i for i in items if i["apiKey"] == api_key)


def test_unbound_key_lifecycle(simulator, master, sim_clock):
    """90 days: status 3, then 4 below 7 days left, then 2; deadlineDay = floor(days left)."""
    key = simulator.add_key(2001).api_key
    item = listed(master, key)
    assert (item["status"], item["deadlineDay"], item["ips"]) == (3, 90, ["*"])
    assert item["createdAt"] == "2026-01-01T00:00:00Z"
    assert item["expiredAt"] == "2026-04-01T00:00:00Z"
    sim_clock.advance(timedelta(seconds=1))
    assert listed(master, key)["deadlineDay"] == 89
    sim_clock.set(SIM_START + 83 * DAY)  # exactly 7 days left: not yet "expiring soon"
    assert (listed(master, key)["status"], listed(master, key)["deadlineDay"]) == (3, 7)
    sim_clock.advance(timedelta(milliseconds=1))
    assert (listed(master, key)["status"], listed(master, key)["deadlineDay"]) == (4, 6)
    sim_clock.set(SIM_START + 90 * DAY)
    assert (listed(master, key)["status"], listed(master, key)["deadlineDay"]) == (2, 0)


def test_bound_key_is_permanent(simulator, master, sim_clock):
    """An IP-bound key: status 1, deadlineDay -2, expiredAt 1970-01-01T00:00:00Z, forever."""
    key = simulator.add_key(2001, ips=["10.0.0.1"]).api_key
    sim_clock.advance(1000 * DAY)
    item = listed(master, key)
    assert (item["status"], item["deadlineDay"], item["expiredAt"]) == (
        1, -2, "1970-01-01T00:00:00Z",
    )  # fmt: skip


def test_expired_key_is_refused(simulator, sim_clock):
    """Using an expired key: 33004 by default."""
    made = simulator.add_key(2001, permissions={"Wallet": ["AccountTransfer"]})
    with SimClient(simulator.base_url, made.api_key, made.api_secret, clock=sim_clock) as sub:
        sim_clock.advance(90 * DAY - timedelta(milliseconds=1))
        assert sub.get(QUERY_API).json()["result"]["deadlineDay"] == 0
        sim_clock.advance(timedelta(milliseconds=1))
        reply = sub.get(QUERY_API).json()
    assert (reply["retCode"], reply["retMsg"]) == (33004, "Your api key has expired.")


def test_expired_key_code_is_an_option(sim_clock):
    sim = new_simulator(sim_clock, SimulatorOptions(expired_key_ret_code=10003))
    made = sim.add_key(2001)
    with (
        sim.serve() as server,
        SimClient(server.base_url, made.api_key, made.api_secret, clock=sim_clock) as sub,
    ):
        sim_clock.advance(91 * DAY)
        assert sub.get(QUERY_API).json()["retCode"] == 10003


def test_calendar_month_lifetime_matches_bybit_example():
    """key_lifetime_months=3 reproduces the doc example 2023-02-15T03:13:24Z -> 2023-05-15."""
    clock = ManualClock(datetime(2023, 2, 15, 3, 13, 24, tzinfo=UTC))
    sim = new_simulator(clock, SimulatorOptions(key_lifetime_months=3))
    view = sim.add_key(2001).api_key
    assert sim.key(view).expires_at == datetime(2023, 5, 15, 3, 13, 24, tzinfo=UTC)
    clock.set(datetime.fromtimestamp(1676430843547 / 1000, tz=UTC))
    assert sim.key(view).deadline_day == 88  # the doc example's deadlineDay


def test_key_lifetime_option(sim_clock):
    sim = new_simulator(sim_clock, SimulatorOptions(key_lifetime=timedelta(days=30)))
    key = sim.add_key(2001).api_key
    assert sim.key(key).expires_at == SIM_START + 30 * DAY


def test_password_change_limits_all_keys_by_default(simulator, sim_clock):
    """Default: every key of the master and its subs dies 7 days after the change."""
    unbound = simulator.add_key(2001).api_key
    bound = simulator.add_key(2002, ips=["10.0.0.1"]).api_key
    sim_clock.advance(10 * DAY)
    affected = simulator.declare_password_change(MASTER_UID)
    deadline = SIM_START + 17 * DAY
    assert {v.api_key for v in affected} == {unbound, bound, "MASTERKEY0000000001"}
    for key in (unbound, bound):
        view = simulator.key(key)
        assert (view.expires_at, view.status, view.deadline_day) == (deadline, KeyStatus.VALID, 7)
    sim_clock.advance(timedelta(seconds=1))
    assert simulator.key(unbound).status is KeyStatus.EXPIRING_SOON
    assert simulator.key("MASTERKEY0000000001").expires_at == deadline


def test_password_change_only_unbound_option(sim_clock):
    """password_change_keys="unbound": IP-bound keys stay permanent."""
    sim = new_simulator(sim_clock, SimulatorOptions(password_change_keys="unbound"))
    unbound = sim.add_key(2001).api_key
    bound = sim.add_key(2001, ips=["10.0.0.1"]).api_key
    sim.declare_password_change(MASTER_UID)
    assert sim.key(unbound).expires_at == SIM_START + 7 * DAY
    assert sim.key(bound).expires_at is None
    assert sim.key("MASTERKEY0000000001").expires_at is None  # bound to 127.0.0.1


def test_password_change_keeps_an_earlier_expiry(simulator, sim_clock):
    """The deadline is min(current expiry, at + 7 days)."""
    key = simulator.add_key(2001).api_key
    sim_clock.advance(88 * DAY)
    simulator.declare_password_change(MASTER_UID)
    assert simulator.key(key).expires_at == SIM_START + 90 * DAY


def test_password_change_at_a_given_time(simulator):
    key = simulator.add_key(2001).api_key
    simulator.declare_password_change(MASTER_UID, at=SIM_START + 2 * DAY)
    assert simulator.key(key).expires_at == SIM_START + 9 * DAY


def test_sub_password_change_touches_only_that_sub(simulator):
    """A sub's own password change affects only that sub's keys."""
    mine = simulator.add_key(2001).api_key
    other = simulator.add_key(2002, ips=["10.0.0.1"]).api_key
    simulator.declare_password_change(2001)
    assert simulator.key(mine).expires_at == SIM_START + 7 * DAY
    assert simulator.key(other).expires_at is None
    assert simulator.key("MASTERKEY0000000001").expires_at is None


def test_password_change_without_subs_option(sim_clock):
    sim = new_simulator(sim_clock, SimulatorOptions(password_change_covers_subs=False))
    key = sim.add_key(2001, ips=["10.0.0.1"]).api_key
    sim.declare_password_change(MASTER_UID)
    assert sim.key(key).expires_at is None
    assert sim.key("MASTERKEY0000000001").expires_at == SIM_START + 7 * DAY


def test_password_change_then_key_refused_after_grace(simulator, sim_clock):
    made = simulator.add_key(2001, ips=["127.0.0.1"])
    simulator.declare_password_change(MASTER_UID)
    with SimClient(simulator.base_url, made.api_key, made.api_secret, clock=sim_clock) as sub:
        result = sub.get(QUERY_API).json()["result"]
        assert (result["expiredAt"], result["deadlineDay"]) == ("2026-01-08T00:00:00Z", 7)
        sim_clock.advance(7 * DAY)
        assert sub.get(QUERY_API).json()["retCode"] == 33004


def test_unbinding_a_bound_key_starts_a_fresh_lifetime(simulator, master, sim_clock):
    """update-sub-api ips="*" on a bound key: expires one lifetime from now."""
    key = simulator.add_key(2001, ips=["10.0.0.1"]).api_key
    sim_clock.advance(5 * DAY)
    assert (
        master.post("/v5/user/update-sub-api", {"apikey": key, "ips": "*"}).json()["retCode"] == 0
    )
    assert simulator.key(key).expires_at == SIM_START + 95 * DAY


@pytest.mark.parametrize(("resets", "expected_days"), [(False, 90), (True, 95)])
def test_update_unbound_resets_expiry_option(sim_clock, resets, expected_days):
    """update_unbound_resets_expiry decides whether ips="*" again extends an unbound key."""
    sim = new_simulator(sim_clock, SimulatorOptions(update_unbound_resets_expiry=resets))
    key = sim.add_key(2001).api_key
    with sim.serve() as server, SimClient(
        server.base_url, "MASTERKEY0000000001", "MASTERSECRET00000000000000000000001",
        clock=sim_clock,
    ) as master:  # fmt: skip
        sim_clock.advance(5 * DAY)
        body = {"apikey": key, "ips": "*"}
        assert master.post("/v5/user/update-sub-api", body).json()["retCode"] == 0
    assert sim.key(key).expires_at == SIM_START + expected_days * DAY
