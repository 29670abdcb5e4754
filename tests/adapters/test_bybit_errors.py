"""Error mapping, retries and the create rule, against scripted replies (httpx.MockTransport)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from bybit_support import (
    Script,
    VirtualTime,
    make_client,
    master,
    ok,
    ret,
)
from rotator.adapters.bybit.client import IP_BAN_WAIT
from rotator.errors import (
    ExchangeAuthFailed,
    ExchangeClockSkew,
    ExchangeOutcomeUnknown,
    ExchangePermissionDenied,
    ExchangeProtocolError,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    KeyLimitReached,
)
from rotator.model import KeySpec, normalize_permissions

KEY_RESULT = {"apiKey": "SOMEKEYID00000000001", "readOnly": 0, "permissions": {}}
CREATED = {
    "id": "1",
    "note": "n",
    "apiKey": "NEWKEYID000000000001",
    "readOnly": 0,
    "secret": "NEWSECRET0000000000000000000000000001",
    "permissions": {"Spot": ["SpotTrade"]},
}
SPEC = KeySpec(
    sub_uid=2001, read_only=False, permissions=normalize_permissions({"Spot": ["SpotTrade"]})
)


@pytest.fixture(name="vt")
def _vt():
    return VirtualTime()


# ---------------------------------------------------------------- permanent retCodes


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        (10003, ExchangeAuthFailed),
        (10004, ExchangeAuthFailed),
        (10007, ExchangeAuthFailed),
        (10010, ExchangeAuthFailed),
        (33004, ExchangeAuthFailed),
        (10005, ExchangePermissionDenied),
        (10001, ExchangeRejected),
        (141004, ExchangeRejected),
    ],
)
def test_permanent_ret_codes_raise_at_once(vt, code, exc_type):
    """A permanent retCode maps to its class, keeps code and message, and is not retried."""
    script = Script(ret(code, "nope"))
    with make_client(script, vt) as client, pytest.raises(exc_type) as info:
        client.query_key(master())
    assert type(info.value) is exc_type
    assert info.value.ret_code == code
    assert info.value.ret_msg == "nope"
    assert len(script.requests) == 1
    assert vt.slept == []


# ---------------------------------------------------------------- temporary: retried


@pytest.mark.parametrize(
    ("reply", "exc_type"),
    [
        (lambda: ret(10000, "Server Timeout"), ExchangeUnavailable),
        (lambda: ret(10016, "Server error"), ExchangeUnavailable),
        (lambda: httpx.Response(503, text="<html>"), ExchangeUnavailable),
        (lambda: httpx.Response(500), ExchangeUnavailable),
        (lambda: ret(10006, "Too many visits!"), ExchangeRateLimited),
        (lambda: httpx.Response(429), ExchangeRateLimited),
        (lambda: httpx.Response(200, text="not json"), ExchangeProtocolError),
        (lambda: httpx.Response(200, json=[1, 2]), ExchangeProtocolError),
        (lambda: httpx.Response(200, json={"retMsg": "no code"}), ExchangeProtocolError),
        (lambda: httpx.Response(200, json={"retCode": "0", "result": {}}), ExchangeProtocolError),
        (lambda: httpx.Response(200, json={"retCode": 0, "result": []}), ExchangeProtocolError),
        (lambda: ok({"readOnly": 0}), ExchangeProtocolError),  # no apiKey
        (lambda: ok({**KEY_RESULT, "expiredAt": "soon"}), ExchangeProtocolError),
        (lambda: ok({**KEY_RESULT, "permissions": "all"}), ExchangeProtocolError),
        (lambda: httpx.ConnectError("refused"), ExchangeUnavailable),
        (lambda: httpx.ReadTimeout("slow"), ExchangeUnavailable),
        (lambda: httpx.RemoteProtocolError("dropped"), ExchangeUnavailable),
    ],
)
def test_temporary_failures_are_retried_then_succeed(vt, reply, exc_type):
    """Each temporary failure is retried; the same failure max_retries+1 times is raised typed."""
    script = Script(reply(), ok(KEY_RESULT))
    with make_client(script, vt) as client:
        assert client.query_key(master()).key_id == KEY_RESULT["apiKey"]
    assert len(script.requests) == 2
    assert len(vt.slept) >= 1

    vt2 = VirtualTime()
    script = Script(*[reply() for _ in range(3)])
    with make_client(script, vt2, max_retries=2) as client, pytest.raises(exc_type) as info:
        client.query_key(master())
    assert type(info.value) is exc_type
    assert len(script.requests) == 3


def test_backoff_is_exponential_full_jitter_and_deterministic(vt):
    """Delays lie in [0, 0.5 * 2**(n-1)] and a seeded rng makes them reproducible."""
    script = Script(*[httpx.Response(503) for _ in range(5)])
    with make_client(script, vt) as client, pytest.raises(ExchangeUnavailable):
        client.query_key(master())
    assert len(script.requests) == 5
    assert len(vt.slept) == 4
    for n, delay in enumerate(vt.slept, start=1):
        assert 0 <= delay <= 0.5 * 2 ** (n - 1)
    vt2 = VirtualTime()
    script = Script(*[httpx.Response(503) for _ in range(5)])
    with make_client(script, vt2) as client, pytest.raises(ExchangeUnavailable):
        client.query_key(master())
    assert vt2.slept == vt.slept


def test_rate_limited_waits_until_the_reset_timestamp(vt):
    """10006 with a reset 1.5 s ahead: the retry goes out no earlier than the reset."""
    reset_ms = vt.now_ms() + 1500
    script = Script(
        ret(10006, "Too many visits!", **{"X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}),
        ok(KEY_RESULT),
    )
    with make_client(script, vt) as client:
        client.query_key(master())
    assert vt.total_slept >= 1.5
    assert int(script.requests[1].headers["X-BAPI-TIMESTAMP"]) >= reset_ms


def test_rate_limited_without_header_waits_the_two_second_fallback(vt):
    script = Script(ret(10006, "Too many visits!"), ok(KEY_RESULT))
    with make_client(script, vt) as client:
        client.query_key(master())
    assert vt.total_slept >= 2.0


def test_http_429_honours_the_reset_header(vt):
    reset_ms = vt.now_ms() + 700
    script = Script(
        httpx.Response(429, headers={"X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}),
        ok(KEY_RESULT),
    )
    with make_client(script, vt) as client:
        client.query_key(master())
    assert 0.7 <= vt.total_slept <= 1.0


def test_http_403_ip_ban_is_not_waited_in_process(vt):
    """403: Bybit's IP ban lasts >= 10 min; raised at once with retry_after for the scheduler."""
    script = Script(httpx.Response(403, text="access too frequent"))
    with make_client(script, vt) as client, pytest.raises(ExchangeRateLimited) as info:
        client.query_key(master())
    assert info.value.retry_after == IP_BAN_WAIT == timedelta(minutes=10)
    assert info.value.http_status == 403
    assert len(script.requests) == 1
    assert vt.slept == []


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(401, ExchangeAuthFailed), (404, ExchangeRejected), (400, ExchangeRejected)],
)
def test_other_http_statuses_are_permanent(vt, status, exc_type):
    script = Script(httpx.Response(status))
    with make_client(script, vt) as client, pytest.raises(exc_type) as info:
        client.query_key(master())
    assert type(info.value) is exc_type
    assert info.value.http_status == status
    assert len(script.requests) == 1


# ---------------------------------------------------------------- clock skew


def test_clock_skew_resyncs_from_market_time_and_corrects_later_timestamps(vt):
    """10002 → GET market/time → offset stored → the retry and later requests use Bybit's time."""
    server_ms = vt.now_ms() + 7_000
    script = Script(
        ret(10002, "invalid request, please check your server timestamp or recv_window param"),
        ok({"timeSecond": str(server_ms // 1000), "timeNano": str(server_ms * 1_000_000)}),
        ok(KEY_RESULT),
        ok(KEY_RESULT),
    )
    with make_client(script, vt) as client:
        client.query_key(master())
        assert client.clock_offset == timedelta(seconds=7)
        client.query_key(master())
    assert script.paths == [
        "/v5/user/query-api",
        "/v5/market/time",
        "/v5/user/query-api",
        "/v5/user/query-api",
    ]
    assert "X-BAPI-SIGN" not in script.requests[1].headers  # market/time is public
    assert int(script.requests[2].headers["X-BAPI-TIMESTAMP"]) == server_ms
    assert int(script.requests[3].headers["X-BAPI-TIMESTAMP"]) == server_ms


def test_persistent_clock_skew_raises_clock_skew(vt):
    replies = []
    for _ in range(3):
        replies += [ret(10002, "ts"), ok({"timeSecond": "1767225600"})]
    script = Script(*replies[:-1])
    with make_client(script, vt, max_retries=2) as client, pytest.raises(ExchangeClockSkew):
        client.query_key(master())


# ---------------------------------------------------------------- the create rule


@pytest.mark.parametrize(
    "reply",
    [
        lambda: httpx.ReadTimeout("reply lost"),
        lambda: httpx.WriteTimeout("half sent"),
        lambda: httpx.RemoteProtocolError("Server disconnected without sending a response."),
        lambda: httpx.ReadError("reset"),
        lambda: httpx.Response(503),
        lambda: httpx.Response(502, text="bad gateway"),
        lambda: httpx.Response(429),
        lambda: ret(10000, "Server Timeout"),
        lambda: ret(10016, "Server error"),
        lambda: httpx.Response(200, text="<html>oops"),
        lambda: ok({"apiKey": "NEWKEYID000000000001"}),  # no secret
        lambda: ok({"secret": "NEWSECRET0000000000000000000000000001"}),  # no apiKey
        lambda: ok([]),
    ],
)
def test_create_whose_outcome_is_unknown_is_never_retried(vt, reply):
    """Anything that may have reached Bybit becomes ExchangeOutcomeUnknown after ONE request."""
    script = Script(reply(), ok(CREATED))
    with make_client(script, vt) as client, pytest.raises(ExchangeOutcomeUnknown) as info:
        client.create_sub_key(master(), SPEC, note="rot-1")
    assert len(script.requests) == 1
    assert vt.slept == []
    assert "note" in str(info.value)
    # It says what the product does about it, never a chore for the user (issue 11).
    assert "finds it by the rotation id in its note and deletes it" in str(info.value)
    assert "look for it" not in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        lambda: httpx.ConnectError("connection refused"),
        lambda: httpx.ConnectTimeout("no SYN-ACK"),
        lambda: ret(10006, "Too many visits!"),
    ],
)
def test_create_that_provably_did_not_reach_bybit_is_retried(vt, reply):
    script = Script(reply(), ok(CREATED))
    with make_client(script, vt) as client:
        created = client.create_sub_key(master(), SPEC, note="rot-1")
    assert created.key_id == CREATED["apiKey"]
    assert created.secret.reveal() == CREATED["secret"]
    assert len(script.requests) == 2


def test_create_after_clock_skew_is_resent_with_corrected_time(vt):
    script = Script(
        ret(10002, "ts"), ok({"timeNano": str((vt.now_ms() - 4000) * 1_000_000)}), ok(CREATED)
    )
    with make_client(script, vt) as client:
        client.create_sub_key(master(), SPEC, note="rot-1")
    assert script.paths.count("/v5/user/create-sub-api") == 2
    assert int(script.requests[2].headers["X-BAPI-TIMESTAMP"]) == vt.now_ms() - 4000


def test_create_key_limit_reply_is_key_limit_reached(vt):
    """The heuristic: a refusal whose message mentions a limit and API keys."""
    msg = "The number of API keys of this account has reached the limit of 20."
    script = Script(ret(10001, msg))
    with make_client(script, vt) as client, pytest.raises(KeyLimitReached):
        client.create_sub_key(master(), SPEC, note="rot-1")
    assert len(script.requests) == 1


def test_create_other_parameter_error_is_rejected(vt):
    script = Script(ret(10001, "params error: subuid"))
    with make_client(script, vt) as client, pytest.raises(ExchangeRejected) as info:
        client.create_sub_key(master(), SPEC, note="rot-1")
    assert type(info.value) is ExchangeRejected


def test_key_limit_message_outside_create_is_a_plain_rejection(vt):
    script = Script(ret(10001, "api key limit reached"))
    with make_client(script, vt) as client, pytest.raises(ExchangeRejected):
        client.query_key(master())
