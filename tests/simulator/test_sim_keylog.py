"""The key event log (`GET /_sim/events`): every create and delete, in order, with both clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from rotator.model import fingerprint

from fixtures.simulator import MASTER_KEY, SIM_START, SimClient

PERMS = {"ContractTrade": ["Order"]}


def test_creates_and_deletes_are_logged_in_order_with_both_clocks(
    simulator, master, sim_url, sim_clock
):
    """Seed, create, delete by the master with apikey, delete by the key itself: four events."""
    seeded = simulator.add_key(2002, note="from the web UI").api_key
    before = datetime.now(UTC)
    made = master.post(
        "/v5/user/create-sub-api",
        {"subuid": 2001, "readOnly": 0, "note": "rotator:r1:bot", "permissions": PERMS},
    ).json()["result"]
    sim_clock.advance(timedelta(minutes=5))
    other = master.post(
        "/v5/user/create-sub-api",
        {"subuid": 2001, "readOnly": 0, "permissions": {"Wallet": ["AccountTransfer"]}},
    ).json()["result"]
    master.post("/v5/user/delete-sub-api", {"apikey": made["apiKey"]})
    with SimClient(sim_url, other["apiKey"], other["secret"], clock=sim_clock) as sub:
        assert sub.post("/v5/user/delete-sub-api", {}).json()["retCode"] == 0
    after = datetime.now(UTC)

    events = httpx.get(f"{sim_url}/_sim/events").json()["events"]
    master_seed = events[0]
    assert (master_seed["apiKey"], master_seed["by"]) == (MASTER_KEY, "seed")
    rows = [(e["seq"], e["kind"], e["apiKey"], e["uid"], e["note"], e["by"]) for e in events[1:]]
    assert rows == [
        (2, "created", seeded, 2002, "from the web UI", "seed"),
        (3, "created", made["apiKey"], 2001, "rotator:r1:bot", "master"),
        (4, "created", other["apiKey"], 2001, "", "master"),
        (5, "deleted", made["apiKey"], 2001, "rotator:r1:bot", "master"),
        (6, "deleted", other["apiKey"], 2001, "", "self"),
    ]
    assert events[2]["time"] == "2026-01-01T00:00:00Z"
    assert events[4]["time"] == (SIM_START + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    walls = [datetime.fromisoformat(e["wallTime"]) for e in events[2:]]
    assert walls == sorted(walls)
    assert before <= walls[0] <= walls[-1] <= after
    assert events[2]["keyFp"] == fingerprint(made["apiKey"])
    text = httpx.get(f"{sim_url}/_sim/events").text
    assert made["secret"] not in text
    assert other["secret"] not in text
    assert "secret" not in text.lower()


def test_refused_and_lost_requests_log_only_what_happened(simulator, master, sim_url):
    """A refused delete logs nothing; a create whose reply is lost is still logged (it exists)."""
    refused = master.post("/v5/user/delete-sub-api", {"apikey": "NOSUCHKEY"})
    assert refused.json()["retCode"] != 0
    httpx.post(f"{sim_url}/_sim/faults", json={"kind": "lose_response", "count": 1})
    try:
        master.post(
            "/v5/user/create-sub-api", {"subuid": 2001, "readOnly": 0, "permissions": PERMS}
        )
    except httpx.HTTPError:
        pass
    kinds = [(e.kind.value, e.uid) for e in simulator.key_events]
    assert kinds == [("created", 1000), ("created", 2001)]
    assert [e.seq for e in simulator.key_events] == [1, 2]
