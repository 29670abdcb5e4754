"""The client-side rate limiter: rolling windows per caller key and endpoint, thread-safe."""

from __future__ import annotations

import threading
from datetime import timedelta

from bybit_support import VirtualTime
from rotator.adapters.bybit import ENDPOINT_LIMITS_PER_S, RateLimiter

CREATE = "/v5/user/create-sub-api"
QUERY = "/v5/user/query-api"


def test_documented_limits():
    assert ENDPOINT_LIMITS_PER_S == {
        "/v5/user/create-sub-api": 1,
        "/v5/user/update-sub-api": 5,
        "/v5/user/delete-sub-api": 5,
        "/v5/user/query-api": 10,
        "/v5/user/sub-apikeys": 10,
        "/v5/user/query-sub-members": 10,
        "/v5/user/submembers": 5,
    }


def test_first_requests_in_a_window_go_at_once_then_wait():
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep, margin_s=0.0)
    waits = [limiter.acquire("K", QUERY) for _ in range(10)]
    assert waits == [0.0] * 10
    assert limiter.acquire("K", QUERY) == 1.0  # the 11th waits for the first to leave the window


def test_create_is_one_per_second_plus_margin():
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep, margin_s=0.05)
    for _ in range(5):
        limiter.acquire("K", CREATE)
    assert vt.slept == [1.05] * 4


def test_buckets_are_per_key_and_per_endpoint():
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep)
    assert limiter.acquire("K1", CREATE) == 0.0
    assert limiter.acquire("K2", CREATE) == 0.0
    assert limiter.acquire("K1", QUERY) == 0.0
    assert limiter.acquire("K1", "/v5/market/time") == 0.0  # unlisted: unlimited
    assert limiter.acquire("K1", CREATE) > 0


def test_close_until_holds_the_bucket_shut():
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep)
    limiter.close_until("K", QUERY, vt.clock.now() + timedelta(seconds=3))
    assert limiter.acquire("K", QUERY) == 3.0
    assert limiter.acquire("K", QUERY) == 0.0  # reopened: the clock is past the reset


def test_concurrent_reservations_never_overfill_a_window():
    """32 threads reserve at once on a frozen clock: every run of `limit`+1 slots spans >= 1 s."""
    vt = VirtualTime()
    limiter = RateLimiter(clock=vt.clock, sleep=vt.sleep, margin_s=0.0)
    slots: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            wait = limiter.reserve("K", "/v5/user/update-sub-api")
            with lock:
                slots.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots.sort()
    assert len(slots) == 160
    limit = 5
    for i in range(limit, len(slots)):
        assert slots[i] - slots[i - limit] >= 1.0 - 1e-9
    assert slots[-1] == (160 // limit - 1) * 1.0
