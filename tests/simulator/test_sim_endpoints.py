"""Each /v5 endpoint of the simulator: shapes, parameters, errors, pagination and limits."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from rotator.clock import to_epoch_ms

from fixtures.simulator import MASTER_KEY, MASTER_UID, SimClient

CREATE = "/v5/user/create-sub-api"
QUERY_API = "/v5/user/query-api"
LIST = "/v5/user/sub-apikeys"
UPDATE = "/v5/user/update-sub-api"
DELETE = "/v5/user/delete-sub-api"
SPOT = {"Spot": ["SpotTrade"]}
SUB_GROUPS = {
    "ContractTrade", "Spot", "Wallet", "Options", "Derivatives", "Exchange", "Earn",
    "BlockTrade", "Affiliate", "FiatP2P", "FiatConvertBroker", "NFT", "CopyTrading",
}  # fmt: skip


def create(master, sim_clock, **params):
    """create-sub-api, then step the clock past the 1/s limit for the next call."""
    body = {"subuid": 2001, "readOnly": 0, "permissions": SPOT} | params
    reply = master.post(CREATE, body).json()
    sim_clock.advance(timedelta(seconds=1))
    return reply


@pytest.fixture(name="sub")
def _sub(simulator, master, sim_clock):
    """A client signing with a freshly created sub key (Wallet permission to manage itself)."""
    result = create(master, sim_clock, permissions=SPOT | {"Wallet": ["AccountTransfer"]})["result"]
    with SimClient(simulator.base_url, result["apiKey"], result["secret"], clock=sim_clock) as c:
        yield c


def test_envelope_shape(master, sim_clock):
    """Success and error replies both carry retCode, retMsg, result, retExtInfo, time (ms)."""
    ok = master.get(QUERY_API)
    assert ok.status_code == 200
    assert set(ok.json()) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert ok.json()["time"] == to_epoch_ms(sim_clock.now())
    err = master.post(CREATE, {"subuid": 2001})
    assert err.status_code == 200
    assert err.json()["retCode"] == 10001
    assert err.json()["result"] == {}
    assert err.json()["retExtInfo"] == {}


def test_server_time_is_public(sim_url, sim_clock):
    """GET /v5/market/time needs no auth and reports the simulator's clock."""
    body = httpx.get(f"{sim_url}/v5/market/time").json()
    ms = to_epoch_ms(sim_clock.now())
    assert body["retCode"] == 0
    assert body["result"] == {"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)}


def test_unknown_route_is_404(master):
    """Paths the simulator does not implement: HTTP 404, retCode 10017."""
    reply = master.get("/v5/user/nope")
    assert reply.status_code == 404
    assert reply.json()["retCode"] == 10017


def test_create_returns_secret_once(simulator, master, sim_clock, sub):
    """Only create-sub-api shows the secret; query-api gives "", sub-apikeys "******"."""
    created = create(master, sim_clock, note="rot-1", ips="*")
    result = created["result"]
    assert created["retCode"] == 0
    assert set(result) == {"id", "note", "apiKey", "readOnly", "secret", "permissions"}
    assert result["readOnly"] == 0
    assert len(result["secret"]) == 36
    assert len(result["apiKey"]) == 18
    assert set(result["permissions"]) == SUB_GROUPS
    assert result["permissions"]["Spot"] == ["SpotTrade"]
    assert result["permissions"]["Wallet"] == []
    assert sub.get(QUERY_API).json()["result"]["secret"] == ""
    items = master.get(LIST, {"subMemberId": 2001}).json()["result"]["result"]
    assert {i["secret"] for i in items} == {"******"}
    assert all(v.api_key != result["secret"] for v in simulator.keys_of(2001))


def test_query_api_describes_the_calling_sub_key(sub):
    """query-api: readOnly int, ips ["*"], userID, parentUid of a sub key."""
    result = sub.get(QUERY_API).json()["result"]
    assert result["apiKey"] == sub.api_key
    assert result["readOnly"] == 0
    assert result["ips"] == ["*"]
    assert result["userID"] == 2001
    assert result["parentUid"] == str(MASTER_UID)
    assert result["isMaster"] is False
    assert result["rsaPublicKey"] == ""
    assert set(result["permissions"]) == SUB_GROUPS


def test_master_query_api(master):
    """The master key: isMaster true, parentUid "0", bound ips, no expiry."""
    result = master.get(QUERY_API).json()["result"]
    assert (result["isMaster"], result["parentUid"], result["ips"]) == (True, "0", ["127.0.0.1"])
    assert (result["deadlineDay"], result["expiredAt"]) == (-2, "1970-01-01T00:00:00Z")


def test_sub_apikeys_item_shape(master, sim_clock):
    """sub-apikeys is double nested and its readOnly is a boolean."""
    create(master, sim_clock, readOnly=1)
    body = master.get(LIST, {"subMemberId": "2001"}).json()["result"]
    assert body["nextPageCursor"] == ""
    (item,) = body["result"]
    assert item["readOnly"] is True
    assert item["flag"] == "hmac"
    assert item["status"] == 3
    assert item["type"] == 1


def test_sub_apikeys_pagination(simulator, master):
    """More keys than `limit`: pages chained by nextPageCursor, "" on the last page."""
    made = [simulator.add_key(2002).api_key for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"subMemberId": 2002, "limit": 2} | ({"cursor": cursor} if cursor else {})
        result = master.get(LIST, params).json()["result"]
        seen += [item["apiKey"] for item in result["result"]]
        pages += 1
        cursor = result["nextPageCursor"]
        if not cursor:
            break
    assert (seen, pages) == (made, 3)


@pytest.mark.parametrize("limit", [0, 21, "x"])
def test_sub_apikeys_limit_range(master, limit):
    """limit must be 1..20."""
    assert master.get(LIST, {"subMemberId": 2001, "limit": limit}).json()["retCode"] == 10001


def test_sub_of_another_master_is_refused(simulator, master):
    """A sub UID that is not the caller's: unknown_sub_ret_code (10001)."""
    simulator.add_account(5000, "OTHERMASTER0000001", "o" * 36, sub_uids=[5001])
    assert master.get(LIST, {"subMemberId": 5001}).json()["retCode"] == 10001
    assert (
        master.post(CREATE, {"subuid": 5001, "readOnly": 0, "permissions": SPOT}).json()["retCode"]
        == 10001
    )


def test_master_only_endpoints_refuse_sub_keys(sub):
    """A sub key on create-sub-api, sub-apikeys, query-sub-members, submembers -> 10005."""
    assert (
        sub.post(CREATE, {"subuid": 2001, "readOnly": 0, "permissions": SPOT}).json()["retCode"]
        == 10005
    )
    assert sub.get(LIST, {"subMemberId": 2001}).json()["retCode"] == 10005
    assert sub.get("/v5/user/query-sub-members").json()["retCode"] == 10005
    assert sub.get("/v5/user/submembers").json()["retCode"] == 10005


@pytest.mark.parametrize(
    "permissions",
    [None, {}, {"Spot": []}, {"Spot": ["Withdraw"]}, {"Nope": ["X"]}, {"Spot": "SpotTrade"}],
)
def test_permission_validation(master, permissions):
    """At least one known group with known values is required, else 10001."""
    body = {"subuid": 2001, "readOnly": 0}
    if permissions is not None:
        body["permissions"] = permissions
    assert master.post(CREATE, body).json()["retCode"] == 10001


def test_all_sub_groups_are_accepted(master, sim_clock):
    """Every documented sub-key group and value round-trips."""
    perms = {
        "ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
        "Wallet": ["AccountTransfer", "SubMemberTransferList"], "Options": ["OptionsTrade"],
        "Derivatives": ["DerivativesTrade"], "Exchange": ["ExchangeHistory"], "Earn": ["Earn"],
    }  # fmt: skip
    result = create(master, sim_clock, permissions=perms)["result"]["permissions"]
    assert {g: v for g, v in result.items() if v} == perms


@pytest.mark.parametrize("read_only", [None, 2, "0", True])
def test_read_only_is_required_int(master, read_only):
    body = {"subuid": 2001, "permissions": SPOT}
    if read_only is not None:
        body["readOnly"] = read_only
    assert master.post(CREATE, body).json()["retCode"] == 10001


def test_twenty_keys_per_uid(simulator, master, sim_clock):
    """The 21st key of one UID is refused with key_limit_ret_code; other UIDs are unaffected."""
    for _ in range(19):
        simulator.add_key(2001)
    assert create(master, sim_clock)["retCode"] == 0
    refused = create(master, sim_clock)
    assert (refused["retCode"], refused["retMsg"]) == (
        10001,
        "The number of API keys of this account has reached the limit of 20.",
    )
    assert len(simulator.keys_of(2001)) == 20
    assert create(master, sim_clock, subuid=2002)["retCode"] == 0


def test_thirty_ips_per_key(master, sim_clock):
    """30 IPs (string or list form) are fine, 31 are refused; a bad address too."""
    ips = [f"10.0.0.{i}" for i in range(1, 32)]
    assert create(master, sim_clock, ips=",".join(ips[:30]))["retCode"] == 0
    assert create(master, sim_clock, ips=ips[:30])["retCode"] == 0
    assert create(master, sim_clock, ips=",".join(ips))["retCode"] == 10001
    assert create(master, sim_clock, ips="10.0.0.1,not-an-ip")["retCode"] == 10001
    assert create(master, sim_clock, ips="*,10.0.0.1")["retCode"] == 10001


def test_update_by_master_needs_apikey(simulator, master, sub):
    """Master: apikey required; the change shows in query-api and the update response."""
    assert master.post(UPDATE, {"readOnly": 1}).json()["retCode"] == 10001
    reply = master.post(
        UPDATE, {"apikey": sub.api_key, "readOnly": 1, "ips": "10.1.1.1", "permissions": SPOT}
    ).json()
    assert reply["retCode"] == 0
    assert reply["result"]["secret"] == ""
    assert reply["result"]["ips"] == ["10.1.1.1"]
    assert reply["result"]["readOnly"] == 1
    view = simulator.key(sub.api_key)
    assert (view.read_only, view.ips, view.expires_at) == (True, ("10.1.1.1",), None)


def test_update_by_sub_forbids_apikey(simulator, sub):
    """Sub key: updates itself without apikey; sending apikey is an error."""
    assert sub.post(UPDATE, {"apikey": sub.api_key, "readOnly": 1}).json()["retCode"] == 10001
    assert sub.post(UPDATE, {"readOnly": 1}).json()["retCode"] == 0
    assert simulator.key(sub.api_key).read_only is True


def test_update_omitted_fields_are_kept(simulator, master, sim_clock):
    """Default update_omitted="keep": readOnly and ips stay as they were."""
    key = create(master, sim_clock, readOnly=1, ips="10.2.2.2")["result"]["apiKey"]
    assert master.post(UPDATE, {"apikey": key, "permissions": SPOT}).json()["retCode"] == 0
    view = simulator.key(key)
    assert (view.read_only, view.ips) == (True, ("10.2.2.2",))


def test_delete_by_master_takes_effect_at_once(simulator, master, sub):
    """After delete-sub-api the key is gone: its next request gets 10003."""
    assert master.post(DELETE, {}).json()["retCode"] == 10001  # apikey required
    assert master.post(DELETE, {"apikey": sub.api_key}).json()["retCode"] == 0
    assert simulator.key(sub.api_key) is None
    assert sub.get(QUERY_API).json()["retCode"] == 10003


def test_sub_deletes_itself(simulator, sub):
    """A sub key deletes itself without apikey; with apikey it is refused."""
    assert sub.post(DELETE, {"apikey": sub.api_key}).json()["retCode"] == 10001
    assert sub.post(DELETE, {}).json()["retCode"] == 0
    assert sub.get(QUERY_API).json()["retCode"] == 10003


def test_master_cannot_delete_its_own_key_via_sub_endpoint(master):
    """delete-sub-api's apikey must be a key of one of the caller's subs."""
    assert master.post(DELETE, {"apikey": MASTER_KEY}).json()["retCode"] == 10001


def test_sub_without_wallet_permission_cannot_manage_itself(simulator, master, sim_clock):
    """ref §3.0: a sub key needs AccountTransfer or SubMemberTransferList to manage itself."""
    result = create(master, sim_clock)["result"]
    with SimClient(simulator.base_url, result["apiKey"], result["secret"], clock=sim_clock) as c:
        assert c.post(DELETE, {}).json()["retCode"] == 10005


def test_non_json_body(master):
    """A POST body that is not a JSON object: 10001."""
    assert master.post(CREATE, "not json").json()["retCode"] == 10001
    assert master.post(CREATE, "[1, 2]").json()["retCode"] == 10001


def test_query_sub_members(master):
    reply = master.get("/v5/user/query-sub-members").json()
    assert [m["uid"] for m in reply["result"]["subMembers"]] == ["2001", "2002"]
    member = reply["result"]["subMembers"][0]
    assert set(member) == {"uid", "username", "memberType", "status", "accountMode", "remark"}


def test_submembers_pagination(simulator, master, sim_clock):
    """submembers: pageSize (max 100) and nextCursor, "0" when no more pages."""
    for uid in range(3001, 3004):
        simulator.add_sub_account(MASTER_UID, uid)
    uids, cursor = [], None
    while True:
        params = {"pageSize": 2} | ({"nextCursor": cursor} if cursor else {})
        result = master.get("/v5/user/submembers", params).json()["result"]
        uids += [m["uid"] for m in result["subMembers"]]
        cursor = result["nextCursor"]
        sim_clock.advance(timedelta(seconds=1))
        if cursor == "0":
            break
    assert uids == ["2001", "2002", "3001", "3002", "3003"]
    assert master.get("/v5/user/submembers", {"pageSize": 101}).json()["retCode"] == 10001


def test_read_only_master_cannot_create(simulator, sim_clock):
    """A read-only master key may not manage keys (read_only_keys_can_manage=False)."""
    simulator.add_account(7000, "ROMASTER0000000001", "r" * 36, sub_uids=[7001], read_only=True)
    with SimClient(simulator.base_url, "ROMASTER0000000001", "r" * 36, clock=sim_clock) as c:
        reply = c.post(CREATE, {"subuid": 7001, "readOnly": 0, "permissions": SPOT}).json()
    assert reply["retCode"] == 10005
