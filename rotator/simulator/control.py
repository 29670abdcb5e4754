"""The control API: JSON over HTTP under `/_sim/`, never under `/v5`, for tests and demos that
drive the simulator from outside the process. Every route is listed in docs/simulator.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rotator.clock import ManualClock, to_epoch_ms
from rotator.durations import parse_duration
from rotator.simulator.keys import rfc3339

if TYPE_CHECKING:
    from collections.abc import Callable

    from rotator.simulator.core import HttpReply, HttpRequest, Simulator


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def handle_control(sim: Simulator, request: HttpRequest) -> HttpReply:
    try:
        body = _body(request)
        result = _route(sim, request.method, request.path, body)
    except _ControlError as exc:
        return _json(exc.status, {"error": exc.message})
    except ValueError as exc:
        return _json(400, {"error": str(exc)})
    return _json(200, result)


def _route(sim: Simulator, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    handler = _ROUTES.get((method, path.rstrip("/")))
    if handler is None:
        raise _ControlError(404, f"no control route {method} {path}")
    return handler(sim, body)


def _manual_clock(sim: Simulator) -> ManualClock:
    if not isinstance(sim.clock, ManualClock):
        raise _ControlError(
            409, "the simulator runs on the wall clock; start it with --manual-clock"
        )
    return sim.clock


def _advance(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    _manual_clock(sim).advance(_duration(body))
    return _clock(sim)


def _set(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    _manual_clock(sim).set(_datetime(body.get("now"), "now"))
    return _clock(sim)


def _password_change(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    uid = body.get("uid")
    if not isinstance(uid, int) or isinstance(uid, bool):
        raise _ControlError(400, "uid must be an integer")
    at = _datetime(body["at"], "at") if body.get("at") is not None else None
    affected = sim.declare_password_change(uid, at)
    return {"affected": [k.to_json() for k in affected]}


def _add_fault(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    if "skewMs" in body:
        skew = body.pop("skewMs")
        if not isinstance(skew, int) or isinstance(skew, bool) or body:
            raise _ControlError(400, 'a skew is {"skewMs": <integer milliseconds>} alone')
        sim.faults.skew(timedelta(milliseconds=skew))
        return _faults(sim)
    fault_id = sim.faults.add(body)
    return {"id": fault_id, **_faults(sim)}


def _clear_faults(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    del body
    sim.faults.clear()
    return _faults(sim)


def _requests(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    del body
    return {"requests": [entry.to_json() for entry in sim.request_log]}


def _events(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    del body
    return {"events": [event.to_json() for event in sim.key_events]}


def _clear_requests(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    del body
    sim.clear_request_log()
    return {"requests": []}


def _clock(sim: Simulator, body: dict[str, Any] | None = None) -> dict[str, Any]:
    del body
    now = sim.now()
    return {
        "now": rfc3339(now),
        "epochMs": to_epoch_ms(now),
        "clockNow": rfc3339(sim.clock.now()),
        "skewMs": sim.faults.skew_offset // timedelta(milliseconds=1),
        "manual": isinstance(sim.clock, ManualClock),
    }


def _faults(sim: Simulator, body: dict[str, Any] | None = None) -> dict[str, Any]:
    del body
    return {
        "faults": [f.to_json() for f in sim.faults.active()],
        "skewMs": sim.faults.skew_offset // timedelta(milliseconds=1),
    }


def _duration(body: dict[str, Any]) -> timedelta:
    if isinstance(body.get("duration"), str):
        return parse_duration(body["duration"])
    seconds = body.get("seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return timedelta(seconds=seconds)
    raise ValueError('give {"seconds": N} or {"duration": "1d2h"}')


def _datetime(raw: object, name: str) -> datetime:
    if not isinstance(raw, str):
        raise ValueError(f"{name} must be an RFC 3339 string like 2026-01-01T00:00:00Z")  # noqa: TRY004 -- a 400
    when = datetime.fromisoformat(raw)
    if when.tzinfo is None:
        raise ValueError(f"{name} must carry a timezone, e.g. a trailing Z")
    return when.astimezone(UTC)


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        parsed = json.loads(request.body)
    except ValueError:
        raise _ControlError(400, "body is not JSON") from None
    if not isinstance(parsed, dict):
        raise _ControlError(400, "body must be a JSON object")
    return parsed


def _json(status: int, payload: dict[str, Any]) -> HttpReply:
    from rotator.simulator.core import HttpReply  # noqa: PLC0415 -- core imports this module lazily

    return HttpReply(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )


def _state(sim: Simulator, body: dict[str, Any]) -> dict[str, Any]:
    del body
    return sim.state()


_ROUTES: dict[tuple[str, str], Callable[[Simulator, dict[str, Any]], dict[str, Any]]] = {
    ("GET", "/_sim/clock"): _clock,
    ("POST", "/_sim/clock/advance"): _advance,
    ("POST", "/_sim/clock/set"): _set,
    ("POST", "/_sim/password-change"): _password_change,
    ("GET", "/_sim/faults"): _faults,
    ("POST", "/_sim/faults"): _add_fault,
    ("DELETE", "/_sim/faults"): _clear_faults,
    ("GET", "/_sim/requests"): _requests,
    ("DELETE", "/_sim/requests"): _clear_requests,
    ("GET", "/_sim/events"): _events,
    ("GET", "/_sim/state"): _state,
}
