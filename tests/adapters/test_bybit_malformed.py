"""Every reply that is not what Bybit's reference says becomes a typed error (issue 10 item 2).

Hypothesis corrupts the replies of every endpoint the client uses: bodies that are not JSON, JSON
nested thousands deep, numbers of thousands of digits, timestamps at the edge of the calendar,
wrong types and missing fields in every record field, and garbage rate-limit headers. Whatever
comes back, the client returns a record or raises a `RotatorError` (an `ExchangeProtocolError`
for a shape it cannot read): never RecursionError, OverflowError, TypeError or anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from bybit_support import (
    TARGET_KEY_ID,
    Script,
    VirtualTime,
    envelope,
    make_client,
    master,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rotator.adapters.bybit import BybitClient
from rotator.errors import ExchangeOutcomeUnknown, ExchangeProtocolError, RotatorError
from rotator.model import KeySpec, normalize_permissions

SPEC = KeySpec(
    sub_uid=2001, read_only=False, permissions=normalize_permissions({"Spot": ["SpotTrade"]})
)
PERMS = normalize_permissions({"Spot": ["SpotTrade"]})

ENDPOINTS: dict[str, Callable[[BybitClient], object]] = {
    "market/time": lambda c: c.server_time(),
    "create-sub-api": lambda c: c.create_sub_key(master(), SPEC, note="rotator:alpha:r1"),
    "query-api": lambda c: c.query_key(master()),
    "sub-apikeys": lambda c: c.list_sub_keys(master(), 2001),
    "update-sub-api": lambda c: c.update_sub_key(
        master(), TARGET_KEY_ID, read_only=False, ips=(), permissions=PERMS
    ),
    "delete-sub-api": lambda c: c.delete_sub_key(master(), TARGET_KEY_ID),
    "query-sub-members": lambda c: c.list_sub_members(master()),
    "submembers": lambda c: c.list_sub_members(master(), paginated=True),
}

DEEP = 3000
HUGE_DIGITS = "9" * 5000

# Values the reference never sends in a field, and a few it does (so real shapes appear too).
garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**40, -(10**40), 2**63, -1, 0, 1, -2]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2026-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "1" * 40,
            "",
            "*",
            "0",
            "1",
        ]
    ),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.lists(st.text(max_size=8), max_size=2), max_size=2),
)

KEY_FIELDS = (
    "apiKey",
    "id",
    "note",
    "readOnly",
    "permissions",
    "ips",
    "createdAt",
    "expiredAt",
    "deadlineDay",
    "status",
    "userID",
    "userIDInt64",
    "isMaster",
    "parentUid",
    "secret",
)
GOOD_KEY = {
    "apiKey": TARGET_KEY_ID,
    "id": "1",
    "note": "rotator:alpha:r1",
    "readOnly": 0,
    "secret": "SECRETSECRETSECRET00000000000001",
    "permissions": {"Spot": ["SpotTrade"]},
    "ips": ["*"],
    "createdAt": "2026-01-01T00:00:00Z",
    "expiredAt": "2026-04-01T00:00:00Z",
    "deadlineDay": 90,
    "status": 3,
    "userID": 2001,
    "isMaster": False,
    "parentUid": "1000",
}
GOOD_MEMBER = {"uid": "2001", "username": "sub1", "memberType": 1, "status": 1}


def _corrupted(good: dict, fields) -> st.SearchStrategy[dict]:
    """`good` with some fields replaced by garbage and some dropped."""
    return st.tuples(
        st.dictionaries(st.sampled_from(list(fields)), garbage, max_size=4),
        st.sets(st.sampled_from(list(fields)), max_size=3),
    ).map(lambda t: {k: v for k, v in {**good, **t[0]}.items() if k not in t[1]})


key_record = _corrupted(GOOD_KEY, KEY_FIELDS)
member_record = _corrupted(GOOD_MEMBER, ("uid", "username", "memberType", "status"))
results = st.one_of(
    garbage,
    key_record,
    st.fixed_dictionaries(
        {
            "result": st.one_of(garbage, st.lists(key_record, max_size=3)),
            "nextPageCursor": garbage,
        }
    ),
    st.fixed_dictionaries(
        {
            "subMembers": st.one_of(garbage, st.lists(member_record, max_size=3)),
            "nextCursor": garbage,
        }
    ),
    st.fixed_dictionaries({"timeNano": garbage, "timeSecond": garbage}),
)


def _body(ret_code, ret_msg, result, time_ms) -> bytes:
    return json.dumps(
        {"retCode": ret_code, "retMsg": ret_msg, "result": result, "time": time_ms},
        allow_nan=True,
    ).encode()


structured = st.builds(
    _body,
    st.one_of(st.just(0), garbage, st.sampled_from([10002, 10006, 10003, 10000, 33004])),
    st.one_of(st.text(max_size=20), garbage),
    results,
    garbage,
)
raw = st.one_of(
    st.binary(max_size=50),
    st.just(b"[" * DEEP + b"]" * DEEP),
    st.just(b'{"retCode":0,"result":' + b"[" * DEEP + b"]" * DEEP + b"}"),
    st.just(b'{"retCode":0,"result":{"timeNano":' + HUGE_DIGITS.encode() + b"}}"),
    st.just(b'{"retCode":' + HUGE_DIGITS.encode() + b"}"),
    st.just(envelope({"timeNano": "1" * 40})),
    st.just(envelope({**GOOD_KEY, "expiredAt": "9999-12-31T23:59:59-01:00"})),
)
headers = st.dictionaries(
    st.sampled_from(["X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp", "Retry-After"]),
    st.one_of(st.integers().map(str), st.sampled_from(["1" * 40, HUGE_DIGITS, "-1", "x", ""])),
    max_size=2,
)
replies = st.tuples(
    st.sampled_from([200, 200, 200, 403, 429, 500]), st.one_of(structured, raw), headers
)


class Forever(Script):
    """Answers every request with the same corrupted reply."""

    def __init__(self, status: int, body: bytes, hdrs: dict[str, str]) -> None:
        super().__init__()
        self.reply = (status, body, hdrs)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, hdrs = self.reply
        return httpx.Response(status, content=body, headers=hdrs)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=replies)
def test_every_corrupted_reply_is_a_typed_error(endpoint, reply):
    """Whatever Bybit sends, each endpoint returns a record or raises a RotatorError."""
    status, body, hdrs = reply
    client = make_client(Forever(status, body, hdrs), VirtualTime(), max_retries=2)
    try:
        ENDPOINTS[endpoint](client)
    except RotatorError:
        pass
    finally:
        client.close()


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * DEEP + b"]" * DEEP, id="nested-3000-deep"),
        pytest.param(
            b'{"retCode":0,"result":' + b"[" * DEEP + b"]" * DEEP + b"}", id="result-3000-deep"
        ),
        pytest.param(b'{"retCode":' + HUGE_DIGITS.encode() + b"}", id="5000-digit-retcode"),
    ],
)
def test_unreadable_envelopes_are_protocol_errors(endpoint, body):
    """Replies json cannot even load (RecursionError, the int digit limit) fail every endpoint
    with ExchangeProtocolError (a create: ExchangeOutcomeUnknown, its reply was lost)."""
    client = make_client(Forever(200, body, {}), VirtualTime(), max_retries=1)
    expected = ExchangeOutcomeUnknown if endpoint == "create-sub-api" else ExchangeProtocolError
    with pytest.raises(expected):
        ENDPOINTS[endpoint](client)
    client.close()


@pytest.mark.parametrize(
    ("endpoint", "result"),
    [
        ("market/time", {"timeNano": "1" * 40}),
        ("market/time", {"timeSecond": 10**15}),
        ("query-api", {**GOOD_KEY, "expiredAt": "9999-12-31T23:59:59-01:00"}),
        ("query-api", {**GOOD_KEY, "createdAt": "0001-01-01T00:00:00+01:00"}),
        ("sub-apikeys", {"result": [{**GOOD_KEY, "expiredAt": "9999-12-31T23:59:59-01:00"}]}),
        ("query-api", {**GOOD_KEY, "permissions": {"Spot": [[["deep"]]]}}),
        ("query-sub-members", {"subMembers": [{"uid": "1" * 5000}]}),
        ("update-sub-api", {**GOOD_KEY, "apiKey": 1.5}),
    ],
)
def test_out_of_range_fields_are_protocol_errors(endpoint, result):
    """Timestamps past the calendar, 40-digit nanoseconds, wrong types: ExchangeProtocolError
    naming the field, never quoting its value."""
    client = make_client(Forever(200, envelope(result), {}), VirtualTime(), max_retries=1)
    with pytest.raises(ExchangeProtocolError) as info:
        ENDPOINTS[endpoint](client)
    assert "9999-12-31" not in info.value.message
    assert "1111111111" not in info.value.message
    client.close()


def test_garbage_rate_limit_reset_header_is_ignored():
    """A 40-digit reset timestamp is no reset time (it would overflow a datetime)."""
    reply = httpx.Response(
        200,
        content=envelope({"timeSecond": "1767225600"}),
        headers={"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": "9" * 40},
    )
    client = make_client(Script(reply), VirtualTime())
    assert client.server_time().year == 2026
    client.close()


def test_clock_skew_reply_on_market_time_does_not_recurse():
    """10002 on the (unsigned) time endpoint is a protocol error, not a resync loop."""
    vt = VirtualTime()
    client = make_client(Forever(200, envelope(code=10002, msg="timestamp"), {}), vt)
    with pytest.raises(RotatorError):
        client.query_key(master())
    client.close()
