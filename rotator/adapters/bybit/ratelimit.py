"""Client-side rate limiter: Bybit's per-UID, per-endpoint rolling one-second windows.

Each (caller key, endpoint) pair is a bucket allowing `limit` sends in any window of
`window_s` seconds (1 s plus a safety margin, so that sends spaced exactly one second apart by our
clock are never counted in the same window by Bybit's). A caller *reserves* the next free send
time under a lock, then sleeps outside it: threads never hold the lock while waiting, and each
reservation is honoured in order. Time is the injected `Clock`, waiting the injected `sleep`.

Bybit's `X-Bapi-Limit-Status` / `X-Bapi-Limit-Reset-Timestamp` headers feed back in: when the
remaining count is 0, or Bybit answered 10006, the bucket is closed until the reset time.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rotator.model import fingerprint

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from rotator.clock import Clock

ENDPOINT_LIMITS_PER_S: dict[str, int] = {
    "/v5/user/create-sub-api": 1,
    "/v5/user/update-sub-api": 5,
    "/v5/user/delete-sub-api": 5,
    "/v5/user/query-api": 10,
    "/v5/user/sub-apikeys": 10,
    "/v5/user/query-sub-members": 10,
    "/v5/user/submembers": 5,
}
"""Bybit's documented per-UID limits (docs/v5/rate-limit). Unlisted endpoints are not limited."""


@dataclass(slots=True)
class _Bucket:
    limit: int
    sends: deque[datetime] = field(default_factory=deque)  # the last `limit` reserved send times
    closed_until: datetime | None = None


class RateLimiter:
    """Spaces requests per (caller key, endpoint) so normal operation never sees a 10006."""

    def __init__(
        self,
        *,
        clock: Clock,
        sleep: Callable[[float], None],
        limits: Mapping[str, int] = ENDPOINT_LIMITS_PER_S,
        margin_s: float = 0.05,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._limits = dict(limits)
        self._window = timedelta(seconds=1 + margin_s)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, api_key: str, endpoint: str) -> _Bucket | None:
        limit = self._limits.get(endpoint)
        if limit is None:
            return None
        # Keyed by fingerprint: the limiter holds no key ids, so a debugger dump shows none.
        bucket_key = (fingerprint(api_key), endpoint)
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = self._buckets[bucket_key] = _Bucket(limit=limit)
        return bucket

    def reserve(self, api_key: str, endpoint: str) -> float:
        """Book the earliest allowed send time; return how many seconds to wait for it."""
        with self._lock:
            bucket = self._bucket(api_key, endpoint)
            if bucket is None:
                return 0.0
            now = self._clock.now()
            slot = now
            if bucket.sends:
                slot = max(slot, bucket.sends[-1])
            if len(bucket.sends) >= bucket.limit:
                slot = max(slot, bucket.sends[-bucket.limit] + self._window)
            if bucket.closed_until is not None:
                slot = max(slot, bucket.closed_until)
            bucket.sends.append(slot)
            while len(bucket.sends) > bucket.limit:
                bucket.sends.popleft()
            return max(0.0, (slot - now).total_seconds())

    def acquire(self, api_key: str, endpoint: str) -> float:
        """Wait (with the injected sleep) until this caller may send to `endpoint`."""
        wait_s = self.reserve(api_key, endpoint)
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s

    def close_until(self, api_key: str, endpoint: str, reset: datetime) -> None:
        """Bybit said the window is used up: nothing goes out before `reset` (local time)."""
        with self._lock:
            bucket = self._bucket(api_key, endpoint)
            if bucket is None:
                return
            if bucket.closed_until is None or reset > bucket.closed_until:
                bucket.closed_until = reset
