"""Per-UID, per-endpoint rolling 1-second rate limits and their headers, on the ManualClock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rotator.clock import to_epoch_ms
from rotator.simulator import SimulatorOptions

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, SimClient, new_simulator

CREATE = "/v5/user/create-sub-api"
QUERY_API = "/v5/user/query-api"
BODY = {"subuid": 2001, "readOnly": 0, "permissions": {"Spot": ["SpotTrade"]}}
MS = timedelta(milliseconds=1)


def test_create_is_one_per_second(simulator, master, sim_clock):
    """The second create within 1 s gets 10006 "Too many visits!"; 1 s later it passes."""
    first = master.post(CREATE, BODY)
    assert first.json()["retCode"] == 0
    t0 = to_epoch_ms(sim_clock.now())
    assert first.headers["X-Bapi-Limit"] == "1"
    assert first.headers["X-Bapi-Limit-Status"] == "0"
    assert first.headers["X-Bapi-Limit-Reset-Timestamp"] == str(t0 + 1000)
    sim_clock.advance(999 * MS)
    second = master.post(CREATE, BODY)
    assert (second.json()["retCode"], second.json()["retMsg"]) == (10006, "Too many visits!")
    assert second.headers["X-Bapi-Limit-Reset-Timestamp"] == str(t0 + 1000)
    assert len(simulator.keys_of(2001)) == 1
    sim_clock.advance(MS)
    assert master.post(CREATE, BODY).json()["retCode"] == 0


def test_query_api_is_ten_per_second_with_headers(master, sim_clock):
    """Limit-Status counts down; the reset timestamp is "now" until the window is exhausted."""
    now = to_epoch_ms(sim_clock.now())
    for remaining in range(9, -1, -1):
        reply = master.get(QUERY_API)
        assert reply.json()["retCode"] == 0
        assert reply.headers["X-Bapi-Limit"] == "10"
        assert reply.headers["X-Bapi-Limit-Status"] == str(remaining)
        expected_reset = now + 1000 if remaining == 0 else now
        assert reply.headers["X-Bapi-Limit-Reset-Timestamp"] == str(expected_reset)
    assert master.get(QUERY_API).json()["retCode"] == 10006
    sim_clock.advance(timedelta(seconds=1))
    assert master.get(QUERY_API).json()["retCode"] == 0


@pytest.mark.parametrize(
    ("method", "path", "limit"),
    [
        ("POST", "/v5/user/update-sub-api", 5),
        ("POST", "/v5/user/delete-sub-api", 5),
        ("GET", "/v5/user/sub-apikeys", 10),
        ("GET", "/v5/user/query-sub-members", 10),
        ("GET", "/v5/user/submembers", 5),
    ],
)
def test_documented_limits(master, method, path, limit):
    """Each endpoint's limit per the reference, visible in X-Bapi-Limit."""
    reply = master.post(path, {}) if method == "POST" else master.get(path, {"subMemberId": 2001})
    assert reply.headers["X-Bapi-Limit"] == str(limit)


def test_rolling_window(master, sim_clock):
    """The window rolls: requests leave it one second after they were made."""
    for _ in range(5):
        master.get(QUERY_API)
    sim_clock.advance(500 * MS)
    for _ in range(5):
        master.get(QUERY_API)
    assert master.get(QUERY_API).json()["retCode"] == 10006
    sim_clock.advance(500 * MS)  # the first five are out of the window now
    assert master.get(QUERY_API).headers["X-Bapi-Limit-Status"] == "4"


def test_headers_on_auth_failure(master):
    """A known key whose request fails auth still gets the headers (without spending a slot)."""
    headers = master.headers("") | {"X-BAPI-SIGN": "0" * 64}
    reply = master.http.get(QUERY_API, headers=headers)
    assert reply.json()["retCode"] == 10004
    assert reply.headers["X-Bapi-Limit-Status"] == "10"


def test_rate_limit_bucket_option(sim_clock):
    """caller (default): a master's creates for two subs share its bucket; target: they do not."""
    for bucket, second in (("caller", 10006), ("target", 0)):
        sim = new_simulator(sim_clock, SimulatorOptions(rate_limit_bucket=bucket))
        with (
            sim.serve() as server,
            SimClient(server.base_url, MASTER_KEY, MASTER_SECRET, clock=sim_clock) as master,
        ):
            assert master.post(CREATE, BODY).json()["retCode"] == 0
            assert master.post(CREATE, BODY | {"subuid": 2002}).json()["retCode"] == second


def test_sub_key_has_its_own_bucket(simulator, master, sim_clock):
    """Rate limits are per UID: a sub key is not limited by the master's usage."""
    made = simulator.add_key(2001)
    for _ in range(10):
        master.get(QUERY_API)
    assert master.get(QUERY_API).json()["retCode"] == 10006
    with SimClient(simulator.base_url, made.api_key, made.api_secret, clock=sim_clock) as sub:
        assert sub.get(QUERY_API).json()["retCode"] == 0


def test_rate_limits_can_be_disabled(sim_clock):
    sim = new_simulator(sim_clock, SimulatorOptions(rate_limits_enabled=False))
    with (
        sim.serve() as server,
        SimClient(server.base_url, MASTER_KEY, MASTER_SECRET, clock=sim_clock) as master,
    ):
        assert [master.post(CREATE, BODY).json()["retCode"] for _ in range(3)] == [0, 0, 0]
