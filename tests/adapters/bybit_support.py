"""Helpers for the Bybit client tests: a virtual clock whose sleep advances it, scripted replies."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from rotator.adapters.bybit import BybitClient, RequestObservation
from rotator.clock import ManualClock, to_epoch_ms
from rotator.model import Credentials, Secret

START = datetime(2026, 1, 1, tzinfo=UTC)
BASE_URL = "http://127.0.0.1:9"  # never reached: MockTransport answers

# Long enough to look like real material, and registered as secrets by Secret().
TEST_KEY = "TESTMASTERKEYID00001"
TEST_SECRET = "TESTMASTERSECRET0000000000000000000001"
TARGET_KEY_ID = "TARGETSUBKEYID000042"


def master() -> Credentials:
    return Credentials(api_key=TEST_KEY, secret=Secret(TEST_SECRET))


@dataclass
class VirtualTime:
    """A ManualClock plus the `sleep` the client gets: it advances the clock, never sleeps."""

    clock: ManualClock = field(default_factory=lambda: ManualClock(START))
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))

    @property
    def total_slept(self) -> float:
        return sum(self.slept)

    def now_ms(self) -> int:
        return to_epoch_ms(self.clock.now())


def envelope(result: object = None, *, code: int = 0, msg: str = "", time_ms: int = 0) -> bytes:
    return json.dumps(
        {
            "retCode": code,
            "retMsg": msg,
            "result": {} if result is None else result,
            "retExtInfo": {},
            "time": time_ms,
        }
    ).encode()


Reply = httpx.Response | Exception


class Script:
    """A MockTransport handler answering from a list of replies, recording every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"unexpected request {request.method} {request.url.path}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def ok(result: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=envelope(result), headers=headers)


def ret(code: int, msg: str = "error", **headers: str) -> httpx.Response:
    return httpx.Response(200, content=envelope(code=code, msg=msg), headers=headers)


def make_client(
    script: Script,
    vt: VirtualTime,
    *,
    observations: list[RequestObservation] | None = None,
    max_retries: int = 4,
) -> BybitClient:
    return BybitClient(
        BASE_URL,
        clock=vt.clock,
        sleep=vt.sleep,
        max_retries=max_retries,
        rng=random.Random(7),
        transport=httpx.MockTransport(script),
        observer=observations.append if observations is not None else None,
    )
