"""Per-UID, per-endpoint rolling one-second windows (ref §7), measured on the simulator's clock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_MS = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int  # after this request
    reset_ms: int  # epoch ms when a slot frees up if exhausted; otherwise now

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RateLimiter:
    """Not thread-safe on its own: the simulator calls it under its lock."""

    def __init__(self) -> None:
        self._hits: dict[tuple[int, str], deque[int]] = {}

    def _window(self, uid: int, endpoint: str, now_ms: int) -> deque[int]:
        hits = self._hits.setdefault((uid, endpoint), deque())
        while hits and hits[0] <= now_ms - WINDOW_MS:
            hits.popleft()
        return hits

    def peek(self, uid: int, endpoint: str, limit: int, now_ms: int) -> RateDecision:
        """The headers for a response that does not consume a slot (e.g. an auth failure)."""
        hits = self._window(uid, endpoint, now_ms)
        remaining = max(limit - len(hits), 0)
        reset = hits[0] + WINDOW_MS if remaining == 0 and hits else now_ms
        return RateDecision(allowed=remaining > 0, limit=limit, remaining=remaining, reset_ms=reset)

    def hit(self, uid: int, endpoint: str, limit: int, now_ms: int) -> RateDecision:
        """Consume a slot if one is free; a refused request does not count."""
        hits = self._window(uid, endpoint, now_ms)
        if len(hits) >= limit:
            return RateDecision(
                allowed=False, limit=limit, remaining=0, reset_ms=hits[0] + WINDOW_MS
            )
        hits.append(now_ms)
        remaining = limit - len(hits)
        reset = hits[0] + WINDOW_MS if remaining == 0 else now_ms
        return RateDecision(allowed=True, limit=limit, remaining=remaining, reset_ms=reset)

    def clear(self) -> None:
        self._hits.clear()
