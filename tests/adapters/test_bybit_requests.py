"""What the client sends and how it reads replies: shapes, quirks, pagination, delete, observer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
from bybit_support import (
    TARGET_KEY_ID,
    Script,
    VirtualTime,
    make_client,
    master,
    ok,
    ret,
)
from rotator.adapters.bybit import RequestObservation
from rotator.errors import ExchangeAuthFailed, ExchangeRejected, ExchangeUnavailable
from rotator.model import KeySpec, ListedStatus, SubMember, normalize_permissions

PERMS = normalize_permissions({"Spot": ["SpotTrade"], "ContractTrade": ["Order", "Position"]})
CREATED = {
    "id": "16651283",
    "note": "rot-1",
    "apiKey": "NEWKEYID000000000001",
    "readOnly": 1,
    "secret": "NEWSECRET0000000000000000000000000001",
    "permissions": {"Spot": ["SpotTrade"], "ContractTrade": ["Order", "Position"], "NFT": []},
}


@pytest.fixture(name="vt")
def _vt():
    return VirtualTime()


def _body(request: httpx.Request) -> dict:
    return json.loads(request.content)


# ---------------------------------------------------------------- request shapes


def test_create_sends_compact_json_with_string_ips_and_int_read_only(vt):
    script = Script(ok(CREATED), ok(CREATED))
    spec = KeySpec(sub_uid=2001, read_only=True, permissions=PERMS, ips=("10.0.0.1", "10.0.0.2"))
    with make_client(script, vt) as client:
        created = client.create_sub_key(master(), spec, note="rot-1")
        client.create_sub_key(
            master(), KeySpec(sub_uid=2001, read_only=False, permissions=PERMS), note="x"
        )
    request = script.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/v5/user/create-sub-api"
    assert b" " not in request.content  # compact: the exact bytes signed
    assert _body(request) == {
        "subuid": 2001,
        "note": "rot-1",
        "readOnly": 1,
        "ips": "10.0.0.1,10.0.0.2",
        "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]},
    }
    assert request.headers["Content-Type"] == "application/json"
    assert _body(script.requests[1])["ips"] == "*"
    assert _body(script.requests[1])["readOnly"] == 0
    assert created.read_only is True
    assert created.permissions == PERMS
    assert created.internal_id == "16651283"
    assert "NEWSECRET" not in repr(created)


def test_update_always_sends_read_only_and_ips(vt):
    reply = {"apiKey": TARGET_KEY_ID, "readOnly": 0, "ips": ["*"], "permissions": {}}
    script = Script(ok(reply))
    with make_client(script, vt) as client:
        key = client.update_sub_key(
            master(), TARGET_KEY_ID, read_only=False, ips=(), permissions=PERMS
        )
    assert script.paths == ["/v5/user/update-sub-api"]
    assert _body(script.requests[0]) == {
        "apikey": TARGET_KEY_ID,
        "readOnly": 0,
        "ips": "*",
        "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]},
    }
    assert key.key_id == TARGET_KEY_ID
    assert key.ips == ("*",)


def test_get_query_is_sorted_and_signed_as_sent(vt):
    script = Script(ok({"result": [], "nextPageCursor": ""}))
    with make_client(script, vt) as client:
        assert client.list_sub_keys(master(), 2001) == ()
    url = script.requests[0].url
    assert url.query == b"limit=20&subMemberId=2001"
    headers = script.requests[0].headers
    for name in ("X-BAPI-API-KEY", "X-BAPI-TIMESTAMP", "X-BAPI-SIGN", "X-BAPI-RECV-WINDOW"):
        assert name in headers
    assert headers["X-BAPI-SIGN-TYPE"] == "2"
    assert headers["X-BAPI-RECV-WINDOW"] == "5000"
    assert headers["X-BAPI-TIMESTAMP"] == str(vt.now_ms())


# ---------------------------------------------------------------- reading replies


def test_query_api_reply_maps_to_exchange_key(vt):
    result = {
        "id": "13770661",
        "note": "XXXXXX",
        "apiKey": "XXXXXXXXXXXXXXXXXX",
        "readOnly": 0,
        "secret": "",
        "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"], "NFT": []},
        "ips": ["*"],
        "type": 1,
        "deadlineDay": 88,
        "expiredAt": "2023-05-15T03:13:24Z",
        "createdAt": "2023-02-15T03:13:24Z",
        "userID": 24617703,
        "isMaster": False,
        "parentUid": "24617700",
    }
    with make_client(Script(ok(result)), vt) as client:
        key = client.query_key(master())
    assert key.key_id == "XXXXXXXXXXXXXXXXXX"
    assert key.internal_id == "13770661"
    assert key.expires_at == datetime(2023, 5, 15, 3, 13, 24, tzinfo=UTC)
    assert key.expires_at.tzinfo is not None
    assert key.created_at == datetime(2023, 2, 15, 3, 13, 24, tzinfo=UTC)
    assert key.deadline_day == 88
    assert key.user_id == 24617703
    assert key.is_master is False
    assert key.parent_uid == 24617700
    assert key.permissions == PERMS
    assert not key.is_ip_bound


def test_ip_bound_master_key_has_no_expiry(vt):
    result = {
        "apiKey": "MASTERKEY",
        "readOnly": 1,
        "ips": ["18.181.170.164", "1.2.3.4"],
        "deadlineDay": -2,
        "expiredAt": "1970-01-01T00:00:00Z",
        "isMaster": True,
        "parentUid": "0",
        "userIDInt64": "1000",
    }
    with make_client(Script(ok(result)), vt) as client:
        key = client.query_key(master())
    assert key.expires_at is None
    assert key.deadline_day is None
    assert key.read_only is True
    assert key.ips == ("18.181.170.164", "1.2.3.4")
    assert key.is_master is True
    assert key.parent_uid is None
    assert key.user_id == 1000


def test_minimal_reply_tolerates_absent_optional_fields(vt):
    with make_client(Script(ok({"apiKey": "K"})), vt) as client:
        key = client.query_key(master())
    assert key.key_id == "K"
    assert key.expires_at is None
    assert key.ips == ("*",)
    assert key.permissions == ()
    assert key.status is ListedStatus.UNKNOWN


def test_sub_apikeys_pages_are_followed_and_read_only_bool_is_read(vt):
    """Two pages via nextPageCursor; readOnly is a boolean in this endpoint; status mapped."""
    item = {
        "id": "1",
        "ips": ["*"],
        "apiKey": "K1",
        "status": 3,
        "expiredAt": "2023-12-01T02:36:06Z",
        "createdAt": "2023-08-25T06:42:39Z",
        "permissions": {},
        "secret": "******",
        "readOnly": True,
        "deadlineDay": 21,
        "flag": "hmac",
    }
    script = Script(
        ok({"result": [item], "nextPageCursor": "cur-2"}),
        ok(
            {
                "result": [{**item, "apiKey": "K2", "readOnly": False, "status": 9}],
                "nextPageCursor": "",
            }
        ),
    )
    with make_client(script, vt) as client:
        keys = client.list_sub_keys(master(), 2001)
    assert [k.key_id for k in keys] == ["K1", "K2"]
    assert [k.read_only for k in keys] == [True, False]
    assert keys[0].status is ListedStatus.VALID
    assert keys[1].status is ListedStatus.UNKNOWN
    assert dict(parse_qsl(script.requests[1].url.query.decode())) == {
        "cursor": "cur-2",
        "limit": "20",
        "subMemberId": "2001",
    }


def test_repeated_cursor_is_unavailable_not_an_endless_loop(vt):
    page = ok({"result": [], "nextPageCursor": "same"})
    script = Script(page, ok({"result": [], "nextPageCursor": "same"}))
    with make_client(script, vt) as client, pytest.raises(ExchangeUnavailable):
        client.list_sub_keys(master(), 2001)


def test_sub_members_small_account_uses_query_sub_members(vt):
    members = [{"uid": "2001", "username": "sub1", "memberType": 1, "status": 1}]
    script = Script(ok({"subMembers": members}))
    with make_client(script, vt) as client:
        assert client.list_sub_members(master()) == (SubMember(uid=2001, username="sub1"),)
    assert script.paths == ["/v5/user/query-sub-members"]


def test_sub_members_falls_back_to_paged_endpoint_at_1000(vt):
    full = [{"uid": str(3000 + i)} for i in range(1000)]
    script = Script(
        ok({"subMembers": full}),
        ok({"subMembers": full[:600], "nextCursor": "600"}),
        ok({"subMembers": [*full[600:], {"uid": "9999"}], "nextCursor": "0"}),
    )
    with make_client(script, vt) as client:
        members = client.list_sub_members(master())
    assert len(members) == 1001
    assert script.paths == [
        "/v5/user/query-sub-members",
        "/v5/user/submembers",
        "/v5/user/submembers",
    ]
    assert script.requests[1].url.query == b"pageSize=100"
    assert script.requests[2].url.query == b"nextCursor=600&pageSize=100"


def test_sub_members_paged_on_request(vt):
    script = Script(ok({"subMembers": [{"uid": "1"}], "nextCursor": "0"}))
    with make_client(script, vt) as client:
        assert [m.uid for m in client.list_sub_members(master(), paginated=True)] == [1]
    assert script.paths == ["/v5/user/submembers"]


def test_server_time_and_ping(vt):
    script = Script(
        ok({"timeSecond": "1767225600", "timeNano": "1767225600123456789"}),
        ok({"timeSecond": "1767225601"}),
    )
    with make_client(script, vt) as client:
        assert client.server_time() == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
        client.ping()
    assert script.paths == ["/v5/market/time", "/v5/market/time"]


# ---------------------------------------------------------------- delete semantics


def test_delete_sends_apikey(vt):
    script = Script(ok({}))
    with make_client(script, vt) as client:
        client.delete_sub_key(master(), TARGET_KEY_ID)
    assert _body(script.requests[0]) == {"apikey": TARGET_KEY_ID}


def test_delete_of_absent_key_counts_as_deleted_once_master_is_proven_valid(vt):
    """10003 on delete is ambiguous: query-api proves the master works, so the target is gone."""
    script = Script(ret(10003, "API key is invalid."), ok({"apiKey": "M"}))
    with make_client(script, vt) as client:
        client.delete_sub_key(master(), TARGET_KEY_ID)
    assert script.paths == ["/v5/user/delete-sub-api", "/v5/user/query-api"]


def test_delete_with_invalid_master_raises_auth_failed(vt):
    script = Script(ret(10003, "API key is invalid."), ret(10003, "API key is invalid."))
    with make_client(script, vt) as client, pytest.raises(ExchangeAuthFailed):
        client.delete_sub_key(master(), TARGET_KEY_ID)


def test_delete_not_exist_message_counts_as_deleted(vt):
    script = Script(ret(10001, "apikey not exist"))
    with make_client(script, vt) as client:
        client.delete_sub_key(master(), TARGET_KEY_ID)
    assert len(script.requests) == 1


def test_delete_other_refusal_is_raised(vt):
    script = Script(ret(10005, "Permission denied"))
    with make_client(script, vt) as client, pytest.raises(ExchangeRejected):
        client.delete_sub_key(master(), TARGET_KEY_ID)


def test_delete_is_retried_after_a_lost_reply(vt):
    """Delete is idempotent: a timeout is retried, and 'already gone' on the retry is success."""
    script = Script(httpx.ReadTimeout("lost"), ret(10001, "apikey does not exist"))
    with make_client(script, vt) as client:
        client.delete_sub_key(master(), TARGET_KEY_ID)
    assert len(script.requests) == 2


# ---------------------------------------------------------------- observer and limit headers


def test_observer_sees_every_attempt(vt):
    observations: list[RequestObservation] = []
    script = Script(
        httpx.ConnectError("no"),
        httpx.Response(503),
        ok({"apiKey": "K"}, **{"X-Bapi-Limit-Status": "9", "X-Bapi-Limit": "10"}),
    )
    with make_client(script, vt, observations=observations) as client:
        client.query_key(master())
    assert [(o.endpoint, o.http_status, o.ret_code, o.limit_remaining) for o in observations] == [
        ("/v5/user/query-api", None, None, None),
        ("/v5/user/query-api", 503, None, None),
        ("/v5/user/query-api", 200, 0, 9),
    ]
    assert all(o.duration_s >= 0 for o in observations)


def test_a_failing_observer_does_not_fail_the_request(vt):
    def broken(_obs):
        raise RuntimeError("metrics bug")

    script = Script(ok({"apiKey": "K"}))
    with make_client(script, vt) as client:
        client._observer = broken
        assert client.query_key(master()).key_id == "K"


def test_remaining_zero_closes_the_bucket_until_reset(vt):
    """X-Bapi-Limit-Status 0 → the next request to that endpoint waits for the reset time."""
    reset_ms = vt.now_ms() + 800
    headers = {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}
    script = Script(ok({"apiKey": "K"}, **headers), ok({"apiKey": "K"}))
    with make_client(script, vt) as client:
        client.query_key(master())
        assert vt.slept == []
        client.query_key(master())
    assert vt.slept == [pytest.approx(0.8)]
    assert int(script.requests[1].headers["X-BAPI-TIMESTAMP"]) == reset_ms
