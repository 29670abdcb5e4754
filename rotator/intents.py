"""What an operator asks for, carried out by whoever holds the account's lease.

`rotator rotate`, `password-changed` and `adopt` never race the daemon: they append an intent to
the account's queue at `<prefix>/intents/<account>` (check-and-set), and the lease holder carries
it out and writes the outcome back, as `cmctl renew` marks a certificate for cert-manager's
controller. With no live holder the CLI takes the lease itself and runs the same `execute()`.

An adopt intent carries the key's secret; once carried out, the secret is dropped from the queue
and the queue versions that held it are destroyed.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Self

from rotator.errors import RotatorError, StateCorrupt, StoreConflict
from rotator.key_report import KeyReport
from rotator.model import Secret
from rotator.ports import KeyStore
from rotator.reports import report_from_record, report_to_record
from rotator.rotation import Engine

QUEUE_SCHEMA = 1
KEEP_FINISHED = timedelta(hours=1)  # finished intents stay readable this long for the CLI
CAS_TRIES = 5


class IntentKind(enum.StrEnum):
    ROTATE = "rotate"  # params: key, force
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a name) params: at, rotate_now, keys
    ADOPT = "adopt"  # params: key, key_id, secret


class IntentStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    id: str
    kind: IntentKind
    params: dict[str, Any]
    requested_at: datetime
    requested_by: str
    status: IntentStatus = IntentStatus.PENDING
    reports: tuple[KeyReport, ...] = ()
    error: str | None = None
    handled_by: str | None = None
    finished_at: datetime | None = None

    @classmethod
    def new(cls, kind: IntentKind, params: dict[str, Any], *, now: datetime, by: str) -> Self:
        return cls(
            id=secrets.token_hex(6), kind=kind, params=params, requested_at=now, requested_by=by
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "params": self.params,
            "requested_at": self.requested_at.isoformat(),
            "requested_by": self.requested_by,
            "status": self.status.value,
            "reports": [report_to_record(r) for r in self.reports],
            "error": self.error,
            "handled_by": self.handled_by,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def from_record(cls, raw: object, what: str) -> Self:
        if not isinstance(raw, dict):
            raise StateCorrupt(f"{what}: expected an object")
        try:
            finished = raw.get("finished_at")
            return cls(
                id=str(raw["id"]),
                kind=IntentKind(raw["kind"]),
                params=dict(raw.get("params") or {}),
                requested_at=datetime.fromisoformat(str(raw["requested_at"])),
                requested_by=str(raw.get("requested_by", "")),
                status=IntentStatus(raw.get("status", "pending")),
                reports=tuple(
                    report_from_record(KeyReport, r, f"{what}.reports")
                    for r in raw.get("reports") or ()
                ),
                error=None if raw.get("error") is None else str(raw["error"]),
                handled_by=None if raw.get("handled_by") is None else str(raw["handled_by"]),
                finished_at=None if finished is None else datetime.fromisoformat(str(finished)),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise StateCorrupt(f"{what} is not an intent this version reads") from None

    @property
    def finished(self) -> bool:
        return self.status is not IntentStatus.PENDING


class IntentQueue:
    """One account's queue of intents in Vault, every change a check-and-set."""

    def __init__(self, store: KeyStore, path: str) -> None:
        self.store = store
        self.path = path

    def read(self) -> tuple[list[Intent], int]:
        current = self.store.read(self.path)
        if current is None:
            return [], 0
        raw = current.data.get("intents")
        if current.data.get("schema") != QUEUE_SCHEMA or not isinstance(raw, list):
            raise StateCorrupt(f"{self.path} is not an intent queue; delete it")
        return [Intent.from_record(r, f"{self.path}[{i}]") for i, r in enumerate(raw)], (
            current.version
        )

    def pending(self) -> list[Intent]:
        return [i for i in self.read()[0] if not i.finished]

    def get(self, intent_id: str) -> Intent | None:
        return next((i for i in self.read()[0] if i.id == intent_id), None)

    def submit(self, intent: Intent) -> None:
        self._update(lambda intents: [*intents, intent])

    def finish(self, intent: Intent, now: datetime) -> None:
        """Record the outcome; drop the secret an adopt carried; prune old finished intents."""
        finished = replace(intent, finished_at=now)
        if finished.kind is IntentKind.ADOPT:
            finished = replace(
                finished, params={k: v for k, v in intent.params.items() if k != "secret"}
            )

        def change(intents: list[Intent]) -> list[Intent]:
            kept = [
                i
                for i in intents
                if i.id != intent.id
                and not (i.finished and i.finished_at and now - i.finished_at > KEEP_FINISHED)
            ]
            return [*kept, finished]

        version = self._update(change)
        if intent.kind is IntentKind.ADOPT and version > 1:
            # Every earlier version of the queue may have held the secret: destroy them.
            self.store.destroy_versions(self.path, list(range(1, version)))

    def _update(self, change: Callable[[list[Intent]], list[Intent]]) -> int:
        for attempt in range(CAS_TRIES):
            intents, version = self.read()
            data = {"schema": QUEUE_SCHEMA, "intents": [i.to_record() for i in change(intents)]}
            try:
                return self.store.write(self.path, data, cas=version)
            except StoreConflict:
                if attempt == CAS_TRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def execute(engine: Engine, account: str, intent: Intent, *, by: str) -> Intent:
    """Carry an intent out with `engine` (which must hold the account's lease). Never raises a
    RotatorError: the outcome is in the returned intent."""
    p = intent.params
    try:
        if intent.kind is IntentKind.ROTATE:
            name = str(p["key"])
            result = engine.reconcile(only={name}, force={name} if p.get("force") else ())
            reports: tuple[KeyReport, ...] = result.keys
        elif intent.kind is IntentKind.PASSWORD_CHANGED:
            engine.declare_password_change(account, datetime.fromisoformat(str(p["at"])))
            names = [str(n) for n in p.get("keys", [])]
            if p.get("rotate_now") and names:
                reports = engine.reconcile(only=names).keys
            else:
                reports = engine.inspect(only=names).keys if names else ()
        else:
            reports = (engine.adopt(str(p["key"]), str(p["key_id"]), Secret(str(p["secret"]))),)
    except RotatorError as exc:
        return replace(intent, status=IntentStatus.FAILED, error=exc.message, handled_by=by)
    except (KeyError, TypeError, ValueError) as exc:
        return replace(
            intent,
            status=IntentStatus.FAILED,
            error=f"malformed intent ({type(exc).__name__})",
            handled_by=by,
        )
    return replace(intent, status=IntentStatus.DONE, reports=reports, handled_by=by)
