"""The reconcile loop of one key: plan a rotation when one is due, then take step after step
until the rotation completes, waits (grace, ack, backoff) or fails, at most one rotation per key
per run. Every way a step can end becomes the report that ends the key's run."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import structlog

from rotator.clock_offset import planning_expiry
from rotator.engine.claims import claimed_by_other
from rotator.engine.parts import AccountRun
from rotator.engine.reasons import rotation_reason
from rotator.engine.step_failure import record_failure
from rotator.engine.steps import StepOutcome, take_step
from rotator.errors import LeaseLost, RotatorError, StoreConflict, TemporaryError
from rotator.failures import FailureClass, failure_class
from rotator.key_report import (
    KeyReport,
    due_report,
    fenced_report,
    idle_report,
    inflight_report,
    unknown_report,
)
from rotator.model import ExchangeKey, ManagedKey
from rotator.policy import effective_expiry, latest_safe_moment
from rotator.progress import Progress, ProgressKind
from rotator.state import KeyState, Rotation

log = structlog.get_logger(__name__)

MAX_STEPS_PER_RUN = 16  # a full rotation takes about 10 record writes


def reconcile_key_isolated(
    run: AccountRun, key: ManagedKey, *, act: bool, should_stop: Callable[[], bool]
) -> KeyReport:
    """`reconcile_key`, with whatever escapes it turned into the key's report: one key's failure
    never stops the others."""
    with structlog.contextvars.bound_contextvars(key=key.name, account=key.account):
        try:
            return reconcile_key(run, key, act=act, should_stop=should_stop)
        except LeaseLost as exc:
            log.info("key.fenced", reason=exc.message)
            return fenced_report(key, exc.message)
        except RotatorError as exc:
            log.error("key.reconcile.failed", error=exc.message, kind=type(exc).__name__)
            return unknown_report(key, exc.message, failure=failure_class(exc))
        except Exception as exc:
            log.exception("key.reconcile.crashed", error=type(exc).__name__)
            return unknown_report(
                key, f"internal error: {type(exc).__name__}", failure=FailureClass.BUG
            )


def reconcile_key(
    run: AccountRun, key: ManagedKey, *, act: bool, should_stop: Callable[[], bool]
) -> KeyReport:
    """Move the key by as many protocol steps as it can now (`act`), or say what would happen
    (not `act`). `should_stop` is asked before every step."""
    parts = run.parts
    completed = False
    attempted = False
    for round_no in range(MAX_STEPS_PER_RUN):
        if should_stop():
            break
        now = parts.clock.now()
        if round_no == 0 or key.name not in parts.records.last:
            state, version = parts.read_state(key)
        else:
            # What our own last check-and-set wrote: if anyone wrote since, the next write
            # of this run fails and the run stops, so no re-read is needed to be safe.
            state, version = parts.records.last[key.name]
        run.saw(key.name, state)
        expiry, listed = expiry_of_active(run, key, state)
        rot = state.rotation
        if rot is None:
            report = plan(
                run, key, state, version, expiry, listed, now=now, act=act, done=completed
            )
            if report is not None:
                return report
            continue
        report = not_now(run, key, state, rot, expiry, now=now, act=act)
        if report is not None:
            return report
        attempted = True
        outcome = guarded_step(run, key, state, rot, version, expiry=expiry, now=now)
        if outcome.report is not None:
            return outcome.report
        completed = completed or outcome.completed
    state, _ = parts.read_state(key)
    expiry, _ = expiry_of_active(run, key, state)
    if state.rotation is None:
        return idle_report(key, state, expiry, parts.clock.now(), completed=completed)
    return inflight_report(key, state, expiry, parts.clock.now(), attempted=attempted)


def plan(
    run: AccountRun,
    key: ManagedKey,
    state: KeyState,
    version: int,
    expiry: datetime | None,
    listed: ExchangeKey | None,
    *,
    now: datetime,
    act: bool,
    done: bool,
) -> KeyReport | None:
    """No rotation in flight: record one if it is due (None: planned, go on), else the report.
    `done`: a rotation completed during this run already (at most one per key per run)."""
    decision = rotation_reason(
        key,
        state,
        expiry,
        listed,
        forced=key.name in run.force,
        password_changed_at=run.account_state.password_changed_at,
        now=now,
    )
    if decision.password_changed_at is not None:
        signal = decision.password_changed_at
        run.key_signal = signal if run.key_signal is None else max(run.key_signal, signal)
    if decision.reason is None or done:
        return idle_report(key, state, expiry, now, completed=done)
    if not act:
        return due_report(key, state, expiry, now, decision.reason)
    rotation = Rotation.planned(rotation_id=secrets.token_hex(6), reason=decision.reason, at=now)
    run.parts.write_state(key, state.with_rotation(rotation), version)
    log.info("rotation.planned", rotation_id=rotation.id, reason=decision.reason.value)
    run.parts.observer(
        Progress(
            kind=ProgressKind.PLANNED,
            key=key.name,
            account=key.account,
            rotation_id=rotation.id,
            reason=decision.reason,
        )
    )
    return None


def not_now(
    run: AccountRun,
    key: ManagedKey,
    state: KeyState,
    rot: Rotation,
    expiry: datetime | None,
    *,
    now: datetime,
    act: bool,
) -> KeyReport | None:
    """Why the rotation in flight takes no step now (its report), or None: take the next step.
    Not acting, backing off after a failure (unless forced), or claimed by another replica."""
    backing_off = rot.next_try is not None and now < rot.next_try and key.name not in run.force
    if not act or backing_off:
        return inflight_report(key, state, expiry, now)
    if claimed_by_other(run.parts, key, state, rot, now):
        return inflight_report(
            key, state, expiry, now, note=f"step claimed by replica {rot.claimed_by}"
        )
    return None


def guarded_step(
    run: AccountRun,
    key: ManagedKey,
    state: KeyState,
    rot: Rotation,
    version: int,
    *,
    expiry: datetime | None,
    now: datetime,
) -> StepOutcome:
    """`take_step`, with every way it can fail turned into the report that ends this key's run:
    fenced out, lost a race, failed (recorded with backoff), or crashed."""
    parts = run.parts
    deadline = latest_safe_moment(expiry, key.policy) if expiry else None
    try:
        return take_step(run, key, state, rot, version, expiry=expiry, now=now)
    except LeaseLost as exc:
        log.info("rotation.step.fenced", step=rot.step.value, reason=exc.message)
        note = "another actor holds the account's lease"
        return StepOutcome(report=inflight_report(key, state, expiry, now, note=note))
    except StoreConflict:
        log.info("rotation.step.conflict", step=rot.step.value, action="backing off")
        parts.observer(
            Progress(
                kind=ProgressKind.CONFLICT,
                key=key.name,
                account=key.account,
                step=rot.step.value,
                rotation_id=rot.id,
            )
        )
        note = "another writer changed the state record; re-reading next run"
        return StepOutcome(report=inflight_report(key, state, expiry, now, note=note))
    except RotatorError as exc:
        report = record_failure(parts, key, state, exc, expiry=expiry, deadline=deadline)
        return StepOutcome(report=report)
    except Exception as exc:
        # A bug or an adapter letting something through: recorded with backoff like any
        # temporary failure, so the key is never stuck silently.
        log.exception("rotation.step.crashed", step=rot.step.value)
        unexpected = TemporaryError(
            f"internal error at step {rot.step.value}: {type(exc).__name__} "
            "(a bug: please report it with the log)"
        )
        report = record_failure(parts, key, state, unexpected, expiry=expiry, deadline=deadline)
        return StepOutcome(report=replace(report, failure=FailureClass.BUG))


def expiry_of_active(
    run: AccountRun, key: ManagedKey, state: KeyState
) -> tuple[datetime | None, ExchangeKey | None]:
    """When the active key dies, as far as Bybit's listing (on our clock), its age and a
    password change tell; and what Bybit lists for it (None: not listed, or no active key)."""
    if state.active is None:
        return None, None
    active = state.active
    listed = next((k for k in run.listing(key.spec.sub_uid) if k.key_id == active.key_id), None)
    reported = (
        planning_expiry(listed.expires_at, run.parts.clock_offset())
        if listed
        else active.expires_at
    )
    created = active.created_at or (listed.created_at if listed else None)
    expiry = effective_expiry(
        reported=reported,
        created_at=created,
        ip_bound=key.spec.is_ip_bound,
        password_changed_at=run.account_state.password_changed_at,
        policy=key.policy,
    )
    return expiry, listed
