"""The time arithmetic of renewal, as worked examples and Hypothesis properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from rotator.errors import StateCorrupt
from rotator.model import Secret
from rotator.policy import (
    MAX_BACKOFF,
    MIN_BACKOFF,
    RotationPolicy,
    due_for_rotation,
    effective_expiry,
    grace_end,
    is_escalated,
    jitter_offset,
    latest_safe_moment,
    next_retry,
    renewal_moment,
)
from rotator.state import (
    AccountState,
    KeyRef,
    KeyState,
    PendingKey,
    Rotation,
    Step,
    parse_note,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60))
seeds = st.text(min_size=1, max_size=30)


@st.composite
def policies(draw) -> RotationPolicy:
    lifetime = draw(st.timedeltas(min_value=timedelta(days=2), max_value=timedelta(days=400)))
    renew = draw(st.timedeltas(min_value=timedelta(seconds=1), max_value=lifetime))
    return RotationPolicy(
        renew_before=renew,
        grace_period=draw(durations),
        jitter=draw(durations),
        retry_budget=draw(durations),
        key_lifetime=lifetime,
        password_change_grace=draw(
            st.timedeltas(min_value=timedelta(days=1), max_value=timedelta(days=14))
        ),
    )


def test_worked_example_defaults():
    """90-day key, defaults: renewal 14 d (plus up to 6 h jitter) before expiry."""
    policy = RotationPolicy()
    expiry = T0 + timedelta(days=90)
    renewal = renewal_moment(expiry, "bot1:KEY", policy)
    assert expiry - timedelta(days=14, hours=6) < renewal <= expiry - timedelta(days=14)
    assert not due_for_rotation(expiry, "bot1:KEY", policy, renewal - timedelta(seconds=1))
    assert due_for_rotation(expiry, "bot1:KEY", policy, renewal)
    assert latest_safe_moment(expiry, policy) == expiry - timedelta(days=3)


def test_effective_expiry_rules():
    """Bybit's word first; unbound = created + lifetime; bound = never; password change caps."""
    policy = RotationPolicy()
    reported = T0 + timedelta(days=89)
    assert (
        effective_expiry(
            reported=reported,
            created_at=T0,
            ip_bound=False,
            password_changed_at=None,
            policy=policy,
        )
        == reported
    )
    assert effective_expiry(
        reported=None, created_at=T0, ip_bound=False, password_changed_at=None, policy=policy
    ) == T0 + timedelta(days=90)
    assert (
        effective_expiry(
            reported=None, created_at=T0, ip_bound=True, password_changed_at=None, policy=policy
        )
        is None
    )
    change = T0 + timedelta(days=10)
    assert effective_expiry(
        reported=None, created_at=T0, ip_bound=True, password_changed_at=change, policy=policy
    ) == change + timedelta(days=7)
    # keys created after the change are not affected by it
    assert (
        effective_expiry(
            reported=None,
            created_at=change + timedelta(seconds=1),
            ip_bound=True,
            password_changed_at=change,
            policy=policy,
        )
        is None
    )


def test_jitter_spreads_keys_created_together():
    """Twenty keys expiring at the same instant renew at twenty different moments."""
    policy = RotationPolicy()
    expiry = T0 + timedelta(days=90)
    moments = {renewal_moment(expiry, f"bot{i}:KEY{i}", policy) for i in range(20)}
    assert len(moments) == 20
    assert max(moments) - min(moments) > timedelta(hours=2)


@given(policy=policies(), expiry=aware, seed=seeds, now=aware, later=durations)
def test_once_due_stays_due(policy, expiry, seed, now, later):
    """Monotonic: once due, a key stays due as time moves on."""
    if due_for_rotation(expiry, seed, policy, now):
        assert due_for_rotation(expiry, seed, policy, now + later)


@given(policy=policies(), expiry=aware, seed=seeds)
def test_renewal_never_after_latest_safe_moment(policy, expiry, seed):
    """The renewal leaves the grace period and the retry budget before expiry."""
    renewal = renewal_moment(expiry, seed, policy)
    assert renewal <= latest_safe_moment(expiry, policy)
    assert renewal <= expiry - policy.grace_period - policy.retry_budget
    assert renewal < expiry or policy.grace_period + policy.retry_budget == timedelta(0)


@given(policy=policies(), expiry=aware, seed=seeds, now=aware)
def test_never_due_before_renew_window(policy, expiry, seed, now):
    """Nothing rotates earlier than renew_before + jitter ahead of expiry."""
    if now < expiry - policy.renew_before - policy.jitter:
        assert not due_for_rotation(expiry, seed, policy, now)


@given(policy=policies(), seed=seeds)
def test_jitter_is_bounded_and_stable(policy, seed):
    """Jitter is in [0, jitter) and the same for the same seed (stable across restarts)."""
    offset = jitter_offset(seed, policy)
    assert timedelta(0) <= offset <= policy.jitter
    assert offset == jitter_offset(seed, policy)


@given(policy=policies(), expiry=aware, now=aware)
def test_escalation_is_the_latest_safe_moment(policy, expiry, now):
    """Escalated exactly from the latest safe moment on."""
    assert is_escalated(expiry, policy, now) == (now >= latest_safe_moment(expiry, policy))
    assert not is_escalated(None, policy, now)


@given(handed=aware, old=st.none() | aware, policy=policies())
def test_grace_never_past_old_expiry(handed, old, policy):
    end = grace_end(handed, old, policy)
    assert end <= handed + policy.grace_period
    if old is not None:
        assert end <= old


@given(
    attempts=st.integers(min_value=1, max_value=100),
    now=aware,
    seed=seeds,
    deadline=st.none() | aware,
)
def test_backoff_bounds(attempts, now, seed, deadline):
    """Retries wait between MIN and MAX backoff, never past a future deadline."""
    when = next_retry(attempts, seed, now, deadline)
    assert when >= now + MIN_BACKOFF or (deadline is not None and when == deadline)
    assert when <= now + MAX_BACKOFF
    if deadline is not None and deadline >= now + MIN_BACKOFF:
        assert when <= deadline


# ------------------------------------------------------------------ records round-trip
opt_dt = st.none() | aware
key_refs = st.builds(
    KeyRef,
    key_id=st.text(min_size=1, max_size=20),
    created_at=opt_dt,
    expires_at=opt_dt,
    consumer_version=st.none() | st.integers(1, 10**6),
)
pendings = st.builds(
    PendingKey,
    key_id=st.text(min_size=1, max_size=20),
    secret=st.text(min_size=1, max_size=40).map(Secret),
    created_at=aware,
    expires_at=opt_dt,
)
rotations = st.builds(
    Rotation,
    id=st.text(min_size=1, max_size=12),
    reason=st.sampled_from(["initial", "expiring"]),
    step=st.sampled_from(list(Step)),
    started_at=aware,
    pending=st.none() | pendings,
    secret_since=st.none() | st.integers(1, 100),
    attempts=st.integers(0, 50),
    failures=st.integers(0, 50),
    next_try=opt_dt,
    last_error=st.none() | st.text(min_size=1, max_size=50),
    claimed_by=st.none() | st.text(min_size=1, max_size=10),
    claimed_at=opt_dt,
    grace_until=opt_dt,
    handoff_forced=st.booleans(),
)
states = st.builds(
    KeyState,
    active=st.none() | key_refs,
    previous=st.none() | key_refs,
    rotation=st.none() | rotations,
    last_rotation_at=opt_dt,
    rotations=st.integers(0, 1000),
)


@settings(max_examples=200)
@given(states)
def test_state_record_roundtrip(state):
    """from_record(to_record(s)) == s, through JSON as Vault stores it."""
    assert KeyState.from_record(json.loads(json.dumps(state.to_record()))) == state


@given(
    st.builds(
        AccountState,
        password_changed_at=opt_dt,
        master_key_fp=st.none() | st.text(min_size=1, max_size=10),
        master_expires_at=opt_dt,
    )
)
def test_account_state_roundtrip(state):
    assert AccountState.from_record(state.to_record()) == state


garbage = (
    st.none()
    | st.integers()
    | st.text(max_size=8)
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
)


@settings(max_examples=300)
@given(
    state=states,
    field=st.sampled_from(
        ["schema", "active", "previous", "rotation", "last_rotation_at", "rotations"]
    ),
    inner=st.sampled_from(
        [
            "id",
            "step",
            "started_at",
            "pending",
            "attempts",
            "next_try",
            "key_id",
            "secret",
            "created_at",
        ]
    ),
    value=garbage,
)
def test_damaged_state_is_state_corrupt(state, field, inner, value):
    """A valid record with one field damaged either still parses or raises StateCorrupt, never a
    bare KeyError or TypeError (which would crash a reconcile)."""
    record = state.to_record()
    target = record.get(field)
    if isinstance(target, dict):
        target[inner] = value
        if isinstance(target.get("pending"), dict) and inner in {"key_id", "secret"}:
            target["pending"][inner] = value
    else:
        record[field] = value
    try:
        KeyState.from_record(record)
    except StateCorrupt:
        pass


def test_note_tags():
    assert parse_note("rotator:abc123:bot1") is not None
    assert parse_note("rotator:abc123:bot1").key_name == "bot1"  # type: ignore[union-attr]
    for note in ("", "hand-made", "rotator:", "rotator:abc", "rotator::bot1"):
        assert parse_note(note) is None
