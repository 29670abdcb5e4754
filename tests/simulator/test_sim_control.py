"""The /_sim control API: clock, password change, faults, request log, state."""

from __future__ import annotations

from datetime import timedelta

import httpx
from rotator.clock import SystemClock

from fixtures.simulator import MASTER_SECRET, MASTER_UID, SIM_START, new_simulator


def test_clock_read_advance_set(sim_url, sim_clock):
    clock = httpx.get(f"{sim_url}/_sim/clock").json()
    assert clock == {
        "now": "2026-01-01T00:00:00Z",
        "epochMs": 1767225600000,
        "clockNow": "2026-01-01T00:00:00Z",
        "skewMs": 0,
        "manual": True,
    }
    after = httpx.post(f"{sim_url}/_sim/clock/advance", json={"duration": "1d2h"}).json()
    assert after["now"] == "2026-01-02T02:00:00Z"
    httpx.post(f"{sim_url}/_sim/clock/advance", json={"seconds": 30})
    assert sim_clock.now() == SIM_START + timedelta(days=1, hours=2, seconds=30)
    httpx.post(f"{sim_url}/_sim/clock/set", json={"now": "2026-03-01T00:00:00Z"})
    assert httpx.get(f"{sim_url}/_sim/clock").json()["now"] == "2026-03-01T00:00:00Z"
    assert httpx.post(f"{sim_url}/_sim/clock/advance", json={"seconds": -1}).status_code == 400


def test_clock_control_needs_a_manual_clock():
    sim = new_simulator(SystemClock())
    with sim.serve() as server:
        reply = httpx.post(f"{server.base_url}/_sim/clock/advance", json={"seconds": 1})
    assert reply.status_code == 409


def test_password_change(simulator, sim_url):
    key = simulator.add_key(2001).api_key
    reply = httpx.post(
        f"{sim_url}/_sim/password-change", json={"uid": MASTER_UID, "at": "2026-01-02T00:00:00Z"}
    ).json()
    assert key in {k["apiKey"] for k in reply["affected"]}
    assert simulator.key(key).expires_at == SIM_START + timedelta(days=8)
    assert httpx.post(f"{sim_url}/_sim/password-change", json={"uid": 9}).status_code == 400


def test_faults_over_http(simulator, sim_url):
    added = httpx.post(
        f"{sim_url}/_sim/faults", json={"kind": "server_error", "status": 500, "count": 1}
    ).json()
    assert added["faults"][0]["kind"] == "server_error"
    assert httpx.get(f"{sim_url}/v5/market/time").status_code == 500
    assert httpx.get(f"{sim_url}/v5/market/time").status_code == 200
    httpx.post(f"{sim_url}/_sim/faults", json={"kind": "rate_limit", "n": 3})
    httpx.post(f"{sim_url}/_sim/faults", json={"skewMs": 1500})
    listed = httpx.get(f"{sim_url}/_sim/faults").json()
    assert (len(listed["faults"]), listed["skewMs"]) == (1, 1500)
    assert httpx.delete(f"{sim_url}/_sim/faults").json() == {"faults": [], "skewMs": 0}
    bad = httpx.post(f"{sim_url}/_sim/faults", json={"kind": "meteor"})
    assert bad.status_code == 400


def test_request_log_and_state(simulator, master, sim_url):
    master.post(
        "/v5/user/create-sub-api",
        {"subuid": 2001, "readOnly": 0, "permissions": {"Spot": ["SpotTrade"]}},
    )
    log = httpx.get(f"{sim_url}/_sim/requests").json()["requests"]
    assert [(e["method"], e["path"], e["retCode"], e["httpStatus"]) for e in log] == [
        ("POST", "/v5/user/create-sub-api", 0, 200)
    ]
    state = httpx.get(f"{sim_url}/_sim/state")
    uids = [a["uid"] for a in state.json()["accounts"]]
    assert uids == [MASTER_UID, 2001, 2002]
    assert MASTER_SECRET not in state.text
    assert "secret" not in state.text.lower()
    assert httpx.delete(f"{sim_url}/_sim/requests").json() == {"requests": []}
    assert simulator.request_log == []


def test_unknown_route_and_bad_json(sim_url):
    assert httpx.get(f"{sim_url}/_sim/nope").status_code == 404
    bad = httpx.post(f"{sim_url}/_sim/clock/advance", content=b"{nope")
    assert bad.status_code == 400
    assert "error" in bad.json()
