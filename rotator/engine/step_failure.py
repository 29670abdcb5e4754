"""A step that failed: recorded on the rotation with backoff (never over another writer's record),
and reported."""

from __future__ import annotations

from datetime import datetime

import structlog

from rotator.engine.parts import Parts
from rotator.errors import LeaseLost, PermanentError, RotatorError, StoreConflict, TemporaryError
from rotator.failures import failure_class
from rotator.key_report import KeyReport, inflight_report
from rotator.model import ManagedKey
from rotator.policy import next_retry
from rotator.progress import Progress, ProgressKind
from rotator.state import KeyState

log = structlog.get_logger(__name__)


def record_failure(
    parts: Parts,
    key: ManagedKey,
    state: KeyState,
    exc: RotatorError,
    *,
    expiry: datetime | None,
    deadline: datetime | None,
) -> KeyReport:
    """Record `exc` on the rotation in flight (the next try backs off, never past `deadline`) and
    report it as a failure of its class."""
    now = parts.clock.now()
    # What this engine last read or wrote for the key (the failing step may have written a
    # claim or a rollback first): the failure is recorded with check-and-set on exactly that
    # version, so a record someone else wrote since is never overwritten.
    state, version = parts.records.last.get(key.name, (state, -1))
    rot = state.rotation
    if rot is not None and version >= 0:
        retry_at = next_retry(rot.failures + 1, f"{key.name}:{rot.id}", now, deadline)
        if isinstance(exc, TemporaryError) and exc.retry_after is not None:
            retry_at = max(retry_at, now + exc.retry_after)
        updated = state.with_rotation(rot.as_failed(error=_short(exc.message), retry_at=retry_at))
        try:
            parts.write_state(key, updated, version)
            state = updated
        except (StoreConflict, LeaseLost) as write_exc:
            # Someone else moved the rotation on meanwhile: our failure is not the truth
            # any more, so it is neither recorded nor reported as one.
            log.info(
                "rotation.step.superseded",
                step=rot.step.value,
                error=exc.message,
                reason=write_exc.message,
            )
            return inflight_report(
                key, state, expiry, now, note="another writer changed the state record"
            )
        except RotatorError as write_exc:
            log.error("rotation.failure_record.failed", error=write_exc.message)
    label = failure_class(exc)
    level = "error" if isinstance(exc, PermanentError) else "warning"
    getattr(log, level)(
        "rotation.step.failed",
        step=rot.step.value if rot else None,
        error=exc.message,
        failure=label,
        retry_at=state.rotation.next_try.isoformat()
        if state.rotation and state.rotation.next_try
        else None,
    )
    parts.observer(
        Progress(
            kind=ProgressKind.STEP_FAILED,
            key=key.name,
            account=key.account,
            step=rot.step.value if rot else None,
            rotation_id=rot.id if rot else None,
            at=state.rotation.next_try if state.rotation else None,
            detail=exc.message,
        )
    )
    return inflight_report(key, state, expiry, now, attempted=True, failure=label)


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
