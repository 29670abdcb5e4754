"""Fault injection: what can go wrong between a client and Bybit, on demand and reproducibly.

Each fault is a rule: a kind, an optional exact path it is scoped to, and how many times it may
still fire (None = until cleared). Randomness (the 5xx rate) comes from the simulator's seeded RNG,
so a seed reproduces a run. `sim.faults` is the in-process API; `POST /_sim/faults` takes the same
fields as JSON (see docs/simulator.md).
"""

from __future__ import annotations

import enum
import itertools
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import timedelta

CREATE_PATH = "/v5/user/create-sub-api"


class FaultKind(enum.StrEnum):
    SERVER_ERROR = "server_error"  # reply HTTP `status` (5xx) with probability `rate`; no effect
    DELAY = "delay"  # really sleep `delay_s` before handling (keep it small)
    HANG = "hang"  # never reply: hold the connection until the client gives up
    LOSE_RESPONSE = "lose_response"  # handle the request (commit!), then close without a reply
    RATE_LIMIT = "rate_limit"  # reply retCode 10006 without handling
    TAMPER_PERMISSIONS = "tamper_permissions"  # the next create stores one permission fewer


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    id: int
    kind: FaultKind
    path: str | None = None  # None: every /v5 path
    remaining: int | None = None  # None: until cleared
    rate: float = 1.0  # SERVER_ERROR only: probability per matching request
    status: int = 503  # SERVER_ERROR only
    delay_s: float = 0.0  # DELAY only
    drop: tuple[str, str] | None = None  # TAMPER_PERMISSIONS: (group, value); None = the first one

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["drop"] = list(self.drop) if self.drop else None
        return out


class Faults:
    """Thread-safe registry of active faults plus the server clock skew."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._skew = timedelta(0)

    # ---- adding ----
    def _add(self, kind: FaultKind, **fields: object) -> int:
        remaining = fields.get("remaining")
        if remaining is not None and (not isinstance(remaining, int) or remaining < 1):
            raise ValueError("count must be a positive integer or None")
        with self._lock:
            fault = Fault(id=next(self._ids), kind=kind, **fields)  # type: ignore[arg-type]
            self._faults.append(fault)
            return fault.id

    def server_errors(
        self,
        rate: float = 1.0,
        *,
        status: int = 503,
        path: str | None = None,
        count: int | None = None,
    ) -> int:
        """Reply HTTP `status` to a fraction `rate` of matching requests; they have no effect."""
        if not 0.0 < rate <= 1.0:
            raise ValueError("rate must be in (0, 1]")
        if not 500 <= status <= 599:
            raise ValueError("status must be a 5xx code")
        return self._add(
            FaultKind.SERVER_ERROR, rate=rate, status=status, path=path, remaining=count
        )

    def delay(self, seconds: float, *, path: str | None = None, count: int | None = None) -> int:
        """Sleep `seconds` (real time) before handling matching requests."""
        if not 0.0 <= seconds <= 10.0:
            raise ValueError("delay must be between 0 and 10 seconds")
        return self._add(FaultKind.DELAY, delay_s=seconds, path=path, remaining=count)

    def hang(self, *, path: str | None = None, count: int | None = 1) -> int:
        """Never answer matching requests: the client's timeout fires. Nothing is handled."""
        return self._add(FaultKind.HANG, path=path, remaining=count)

    def lose_response(self, *, path: str | None = CREATE_PATH, count: int | None = 1) -> int:
        """Handle matching requests (a create commits its key), then close without a reply."""
        return self._add(FaultKind.LOSE_RESPONSE, path=path, remaining=count)

    def rate_limit_burst(self, n: int, *, path: str | None = None) -> int:
        """The next `n` matching requests get retCode 10006 and are not handled."""
        return self._add(FaultKind.RATE_LIMIT, path=path, remaining=n)

    def tamper_permissions(
        self, *, drop: tuple[str, str] | None = None, count: int | None = 1
    ) -> int:
        """The next create stores (and returns) the key with one requested permission missing:
        `drop=(group, value)`, or the first value of the first group when None."""
        return self._add(FaultKind.TAMPER_PERMISSIONS, path=CREATE_PATH, drop=drop, remaining=count)

    def skew(self, offset: timedelta) -> None:
        """Shift the server's clock by `offset` (positive: the server is ahead of its clock)."""
        with self._lock:
            self._skew = offset

    @property
    def skew_offset(self) -> timedelta:
        with self._lock:
            return self._skew

    def add(self, spec: Mapping[str, object]) -> int:
        """Add a fault from its JSON form (the control API). Raises ValueError on a bad spec."""
        spec = dict(spec)
        kind = FaultKind(str(spec.pop("kind", "")))
        path = spec.pop("path", None)
        if path is not None and not isinstance(path, str):
            raise ValueError("path must be a string")
        has_count = "count" in spec
        count = spec.pop("count", None)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValueError("count must be an integer or null")
        once = count if has_count else 1  # default for one-shot kinds
        result: int
        if kind is FaultKind.SERVER_ERROR:
            result = self.server_errors(
                float(_num(spec.pop("rate", 1.0))),
                status=int(_num(spec.pop("status", 503))),
                path=path,
                count=count,
            )
        elif kind is FaultKind.DELAY:
            result = self.delay(float(_num(spec.pop("seconds", 0.0))), path=path, count=count)
        elif kind is FaultKind.HANG:
            result = self.hang(path=path, count=once)
        elif kind is FaultKind.LOSE_RESPONSE:
            result = self.lose_response(path=path or CREATE_PATH, count=once)
        elif kind is FaultKind.RATE_LIMIT:
            result = self.rate_limit_burst(int(_num(spec.pop("n", 1))), path=path)
        else:
            drop = spec.pop("drop", None)
            if drop is not None and not (
                isinstance(drop, list) and len(drop) == 2 and all(isinstance(d, str) for d in drop)
            ):
                raise ValueError('drop must be ["Group", "Value"]')
            result = self.tamper_permissions(
                drop=(str(drop[0]), str(drop[1])) if drop else None, count=once
            )
        if spec:
            self.remove(result)
            raise ValueError(f"unknown field(s) for {kind.value}: {sorted(spec)}")
        return result

    # ---- removing / reading ----
    def remove(self, fault_id: int) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f.id != fault_id]

    def clear(self) -> None:
        """Remove every fault and the clock skew."""
        with self._lock:
            self._faults.clear()
            self._skew = timedelta(0)

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, kind: FaultKind, path: str) -> Fault | None:
        """The first fault of `kind` matching `path` that fires now; consumes one occurrence."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.kind is not kind or (fault.path is not None and fault.path != path):
                    continue
                if kind is FaultKind.SERVER_ERROR and self._rng.random() >= fault.rate:
                    continue
                if fault.remaining is not None:
                    if fault.remaining <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = replace(fault, remaining=fault.remaining - 1)
                return fault
            return None


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")  # noqa: TRY004 -- control API input: a 400
    return float(value)
