"""Fault injection: 5xx, delays, hangs, lost responses, 10006 bursts, skew, tampered permissions."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from rotator.model import fingerprint
from rotator.simulator import FaultKind

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, new_simulator

CREATE = "/v5/user/create-sub-api"
QUERY_API = "/v5/user/query-api"
TIME = "/v5/market/time"
BODY = {"subuid": 2001, "readOnly": 0, "permissions": {"Spot": ["SpotTrade"], "Earn": ["Earn"]}}


def statuses(sim_clock, seed):
    sim = new_simulator(sim_clock, seed=seed)
    sim.faults.server_errors(0.5, status=503)
    with sim.serve() as server:
        return [httpx.get(server.base_url + TIME).status_code for _ in range(20)]


def test_server_errors_are_reproducible(sim_clock):
    """A 5xx rate draws from the seeded RNG: the same seed gives the same sequence."""
    first = statuses(sim_clock, 7)
    assert first == statuses(sim_clock, 7)
    assert set(first) == {200, 503}


def test_server_error_has_no_effect_and_is_scoped(simulator, master, sim_url):
    """A 5xx'd create commits nothing; a fault scoped to one path leaves others alone."""
    simulator.faults.server_errors(1.0, status=502, path=CREATE, count=1)
    assert httpx.get(sim_url + TIME).status_code == 200
    reply = master.post(CREATE, BODY)
    assert reply.status_code == 502
    assert simulator.keys_of(2001) == []
    assert simulator.request_log[-1].fault == "server_error"
    assert master.post(CREATE, BODY).json()["retCode"] == 0  # count=1: used up


def test_delay_really_waits(simulator, sim_url):
    simulator.faults.delay(0.05, path=TIME, count=1)
    started = time.monotonic()
    assert httpx.get(sim_url + TIME).status_code == 200
    assert time.monotonic() - started >= 0.05


def test_hang_until_the_client_times_out(simulator, master):
    """A hang never replies; the client's own timeout fires. Nothing is handled."""
    simulator.faults.hang(path=CREATE)
    with pytest.raises(httpx.ReadTimeout):
        master.http.post(CREATE, content=b"{}", headers=master.headers("{}"), timeout=0.3)
    assert simulator.keys_of(2001) == []
    assert simulator.request_log[-1].fault == "hang"


def test_lost_response_after_commit(simulator, master):
    """The create commits its key, then the connection closes without a reply."""
    simulator.faults.lose_response()
    with pytest.raises(httpx.RemoteProtocolError):
        master.post(CREATE, BODY | {"note": "rotation-42"})
    (view,) = simulator.keys_of(2001)
    assert view.note == "rotation-42"
    entry = simulator.request_log[-1]
    assert (entry.fault, entry.http_status, entry.ret_code) == ("lose_response", 0, 0)


def test_rate_limit_burst(simulator, master):
    """The next N requests get 10006 with exhausted headers; then normal service resumes."""
    simulator.faults.rate_limit_burst(2, path=QUERY_API)
    for _ in range(2):
        reply = master.get(QUERY_API)
        assert reply.json()["retCode"] == 10006
        assert reply.headers["X-Bapi-Limit-Status"] == "0"
    assert master.get(QUERY_API).json()["retCode"] == 0
    assert [e.fault for e in simulator.request_log] == ["rate_limit", "rate_limit", None]


def test_clock_skew(simulator, master, sim_url, sim_clock):
    """A server clock 10 s ahead rejects client timestamps with 10002 and reports its time."""
    simulator.faults.skew(timedelta(seconds=10))
    assert master.get(QUERY_API).json()["retCode"] == 10002
    server_time = httpx.get(sim_url + TIME).json()["time"]
    assert server_time == int(master.headers("")["X-BAPI-TIMESTAMP"]) + 10_000
    simulator.faults.clear()
    assert master.get(QUERY_API).json()["retCode"] == 0


def test_tamper_permissions(simulator, master):
    """The next create stores and returns the key with one requested permission missing."""
    simulator.faults.tamper_permissions(drop=("Earn", "Earn"))
    result = master.post(CREATE, BODY).json()["result"]
    assert result["permissions"]["Earn"] == []
    assert result["permissions"]["Spot"] == ["SpotTrade"]
    assert simulator.key(result["apiKey"]).permissions == {"Spot": ("SpotTrade",)}
    assert simulator.request_log[-1].fault == FaultKind.TAMPER_PERMISSIONS.value


def test_tamper_default_drops_first_value(simulator, master):
    simulator.faults.tamper_permissions()
    result = master.post(CREATE, BODY).json()["result"]
    assert result["permissions"]["Earn"] == []  # "Earn" sorts before "Spot"


def test_request_log_holds_no_secret(simulator, master):
    """Log entries carry a key fingerprint, never a key id or secret."""
    secret = master.post(CREATE, BODY).json()["result"]["secret"]
    text = repr(simulator.request_log) + str([e.to_json() for e in simulator.request_log])
    for forbidden in (MASTER_KEY, MASTER_SECRET, secret):
        assert forbidden not in text
    assert simulator.request_log[-1].key_fp == fingerprint(MASTER_KEY)


def test_bad_fault_specs_are_refused(simulator):
    with pytest.raises(ValueError):
        simulator.faults.server_errors(0.0)
    with pytest.raises(ValueError):
        simulator.faults.server_errors(1.0, status=404)
    with pytest.raises(ValueError):
        simulator.faults.add({"kind": "delay", "seconds": 0.01, "bogus": 1})
    assert simulator.faults.active() == []
