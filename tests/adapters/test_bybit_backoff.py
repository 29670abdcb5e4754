"""The client's retry delays come from rotator.retry.Backoff with the numbers they always had:
full jitter uniform(0, min(30, 0.5 * 2**(n-1))) s; 0 s after a clock skew (a resync is the fix)."""

from __future__ import annotations

import random

import httpx
import pytest
from bybit_support import Script, VirtualTime, make_client, master, ok, ret
from rotator.errors import ExchangeUnavailable

KEY_RESULT = {"apiKey": "SOMEKEYID00000000001", "readOnly": 0, "permissions": {}}


def test_delays_are_the_full_jitter_formula_draw_for_draw() -> None:
    """Ten 503s on a seeded rng sleep exactly rng.uniform(0, ceiling) with the ceiling doubling
    from 0.5 s to the 30 s cap: the same numbers, in the same order, as the formula."""
    vt = VirtualTime()
    script = Script(*[httpx.Response(503) for _ in range(11)])
    with make_client(script, vt, max_retries=10) as client, pytest.raises(ExchangeUnavailable):
        client.query_key(master())
    oracle = random.Random(7)  # make_client's seed
    expected = [oracle.uniform(0, min(30.0, 0.5 * 2 ** (n - 1))) for n in range(1, 11)]
    assert vt.slept == expected


def test_a_clock_skew_is_retried_at_once() -> None:
    """10002: the retry goes out without any sleep, whatever the jitter would have drawn."""
    vt = VirtualTime()
    server_ms = vt.now_ms()
    script = Script(
        ret(10002, "invalid request, please check your server timestamp or recv_window param"),
        ok({"timeSecond": str(server_ms // 1000), "timeNano": str(server_ms * 1_000_000)}),
        ok(KEY_RESULT),
    )
    with make_client(script, vt) as client:
        client.query_key(master())
    assert vt.slept == []
