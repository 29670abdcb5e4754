"""The pure decisions behind issue 11's signals: orphans, password change, drift, clocks.
Worked examples and Hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from rotator.clock_offset import offset_is_large, planning_expiry
from rotator.drift import spec_mismatches
from rotator.model import ExchangeKey, KeySpec, Secret, normalize_permissions
from rotator.orphans import (
    ORPHAN_MIN_AGE,
    AccountRecords,
    Orphan,
    OrphanKind,
    judge_orphans,
    referenced_key_ids,
    sweep,
)
from rotator.password_change import PasswordChangeScope, awaits_forced_rotation, signalled_change
from rotator.policy import RotationPolicy, effective_expiry
from rotator.state import KeyRef, KeyState, PendingKey, Rotation, Step

NOW = datetime(2026, 6, 1, tzinfo=UTC)
GRACE = timedelta(days=7)
NAMES = ("alpha", "beta", "gone")
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ages = st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))


@st.composite
def listed_keys(draw) -> ExchangeKey:
    key_id = draw(st.sampled_from([f"K{i}" for i in range(12)]))
    note = draw(
        st.one_of(
            st.just(""),
            st.just("made by hand"),
            st.builds(lambda n, r: f"rotator:{r}:{n}", st.sampled_from(NAMES), st.just("abc123")),
        )
    )
    age = draw(ages)
    return ExchangeKey(key_id=key_id, note=note, created_at=None if age is None else NOW - age)


listings = st.dictionaries(
    st.integers(min_value=2001, max_value=2003),
    st.lists(listed_keys(), max_size=6, unique_by=lambda k: k.key_id),
    max_size=3,
)
records = st.builds(
    AccountRecords,
    key_ids=st.frozensets(st.sampled_from([f"K{i}" for i in range(12)]), max_size=6),
    names=st.just(frozenset({"alpha", "beta"})),
)


# ------------------------------------------------------------------------------------ orphans
@given(listings, records)
def test_judgement_never_touches_a_referenced_key(lists, recs):
    to_delete, to_report = judge_orphans(lists, recs, NOW)
    judged = {o.key_id for o in (*to_delete, *to_report)}
    assert judged.isdisjoint(recs.key_ids)


@given(listings, records)
def test_only_old_tagged_keys_of_configured_names_are_deleted(lists, recs):
    to_delete, to_report = judge_orphans(lists, recs, NOW)
    by_id = {(uid, k.key_id): k for uid, listing in lists.items() for k in listing}
    for orphan in to_delete:
        listed = by_id[orphan.sub_uid, orphan.key_id]
        assert orphan.kind is OrphanKind.DELETABLE
        assert orphan.key_name in recs.names
        assert listed.created_at is not None
        assert NOW - listed.created_at >= ORPHAN_MIN_AGE
    assert all(o.kind is not OrphanKind.DELETABLE for o in to_report)
    judged = (*to_delete, *to_report)
    assert all(by_id[o.sub_uid, o.key_id].note.startswith("rotator:") for o in judged)


@given(listings, records, st.frozensets(st.sampled_from([f"K{i}" for i in range(12)])))
def test_more_references_never_mean_more_deletes(lists, recs, extra):
    wider = AccountRecords(key_ids=recs.key_ids | extra, names=recs.names)
    fewer, _ = judge_orphans(lists, wider, NOW)
    more, _ = judge_orphans(lists, recs, NOW)
    assert {o.key_id for o in fewer} <= {o.key_id for o in more}


def test_worked_example():
    """Referenced, untagged, young, unknown name, no createdAt, deletable: one of each."""
    lists = {
        2001: [
            ExchangeKey(key_id="LIVE", note="rotator:a:alpha", created_at=NOW - timedelta(days=9)),
            ExchangeKey(key_id="HAND", note="bot key", created_at=NOW - timedelta(days=9)),
            ExchangeKey(
                key_id="YOUNG", note="rotator:b:alpha", created_at=NOW - timedelta(minutes=3)
            ),
            ExchangeKey(
                key_id="OLDNAME", note="rotator:c:gone", created_at=NOW - timedelta(days=9)
            ),
            ExchangeKey(key_id="NOAGE", note="rotator:d:beta", created_at=None),
            ExchangeKey(key_id="LOST", note="rotator:e:beta", created_at=NOW - timedelta(hours=1)),
        ]
    }
    recs = AccountRecords(key_ids=frozenset({"LIVE"}), names=frozenset({"alpha", "beta"}))
    to_delete, to_report = judge_orphans(lists, recs, NOW)
    assert [o.key_id for o in to_delete] == ["LOST"]
    assert {(o.key_id, o.kind) for o in to_report} == {
        ("OLDNAME", OrphanKind.UNKNOWN_NAME),
        ("NOAGE", OrphanKind.NO_CREATED_AT),
    }


def orphan(key_id: str) -> Orphan:
    return Orphan(
        key_id=key_id, sub_uid=1, key_name="a", rotation_id="r", kind=OrphanKind.DELETABLE
    )


@given(
    st.lists(st.sampled_from(["A", "B", "C", "D"]), unique=True),
    st.frozensets(st.sampled_from(["A", "B", "C", "D"])),
)
def test_sweep_never_deletes_what_the_records_name_at_that_moment(candidates, held):
    deleted_ids: list[str] = []
    deleted, spared = sweep(
        [orphan(c) for c in candidates],
        referenced=lambda: frozenset(held),
        delete=deleted_ids.append,
    )
    assert set(deleted_ids).isdisjoint(held)
    assert [o.key_id for o in deleted] == deleted_ids
    assert {o.key_id for o in spared} == set(candidates) & held


def test_sweep_rereads_before_each_delete():
    """A record that appears between two deletes spares the second key."""
    held: set[str] = set()
    deleted_ids: list[str] = []

    def delete(key_id: str) -> None:
        deleted_ids.append(key_id)
        held.add("B")  # meanwhile a rotation recorded B as its pending key

    sweep([orphan("A"), orphan("B")], referenced=lambda: frozenset(held), delete=delete)
    assert deleted_ids == ["A"]


def test_referenced_key_ids_cover_active_previous_pending_and_consumers():
    rot = Rotation(
        id="r",
        reason="expiring",
        step=Step.CREATED,
        started_at=NOW,
        pending=PendingKey(key_id="P", secret=Secret("s" * 12), created_at=NOW),
    )
    state = KeyState(active=KeyRef(key_id="A"), previous=KeyRef(key_id="B"), rotation=rot)
    assert referenced_key_ids([state, KeyState()], ["C", None]) == {"A", "B", "P", "C"}


# ---------------------------------------------------------------------------- password change
def test_signalled_change_examples():
    """Appears within 7 days or moves earlier into them: a change; far away: none."""
    soon = NOW + timedelta(days=6)
    assert signalled_change(None, soon, NOW, GRACE) == soon - GRACE
    assert signalled_change(NOW + timedelta(days=80), soon, NOW, GRACE) == soon - GRACE
    assert signalled_change(None, NOW + timedelta(days=90), NOW, GRACE) is None  # binding removed
    assert signalled_change(soon, soon, NOW, GRACE) is None  # nothing moved
    assert signalled_change(NOW + timedelta(days=80), None, NOW, GRACE) is None
    assert signalled_change(None, NOW + timedelta(days=7), NOW, GRACE) == NOW
    # within the tolerance past the grace: still a change, dated no later than now
    assert signalled_change(None, NOW + GRACE + timedelta(seconds=30), NOW, GRACE) == NOW


@given(st.one_of(st.none(), aware), aware, aware)
def test_a_signalled_change_is_never_in_the_future_and_explains_the_expiry(recorded, reported, now):
    changed = signalled_change(recorded, reported, now, GRACE)
    if changed is not None:
        assert changed <= now
        assert reported <= now + GRACE + timedelta(minutes=1)
        assert recorded is None or reported < recorded


@given(st.one_of(st.none(), aware), st.booleans(), aware)
def test_unbound_scope_forces_a_subset_of_all(created, bound, changed):
    unbound_only = awaits_forced_rotation(
        created_at=created, ip_bound=bound, changed_at=changed, scope=PasswordChangeScope.UNBOUND
    )
    everything = awaits_forced_rotation(
        created_at=created, ip_bound=bound, changed_at=changed, scope=PasswordChangeScope.ALL
    )
    assert not unbound_only or everything
    if created is not None and created >= changed:
        assert not everything  # a key made after the change is never forced


def test_effective_expiry_follows_the_scope():
    created = NOW - timedelta(days=30)
    changed = NOW - timedelta(days=1)
    unbound = RotationPolicy(password_change_scope=PasswordChangeScope.UNBOUND)
    common = {"reported": None, "created_at": created, "password_changed_at": changed}
    assert effective_expiry(ip_bound=True, policy=RotationPolicy(), **common) == changed + GRACE
    assert effective_expiry(ip_bound=True, policy=unbound, **common) is None
    assert effective_expiry(ip_bound=False, policy=unbound, **common) == changed + GRACE


# ------------------------------------------------------------------------------------ drift
SPEC = KeySpec(
    sub_uid=2001,
    read_only=False,
    permissions=normalize_permissions({"Spot": ["SpotTrade"]}),
    ips=("10.0.0.1",),
)


def test_drift_examples():
    same = ExchangeKey(key_id="K", permissions=SPEC.permissions, ips=("10.0.0.1",))
    assert spec_mismatches(SPEC, same) == []
    auto = ExchangeKey(
        key_id="K",
        permissions=normalize_permissions(
            {"Spot": ["SpotTrade"], "Derivatives": ["DerivativesTrade"]}
        ),
        ips=("10.0.0.1",),
    )
    assert spec_mismatches(SPEC, auto) == []  # Bybit adds Derivatives on its own
    widened = ExchangeKey(
        key_id="K",
        permissions=normalize_permissions({"Spot": ["SpotTrade"], "Wallet": ["AccountTransfer"]}),
        ips=("*",),
        read_only=True,
    )
    assert spec_mismatches(SPEC, widened) == [
        "unexpected permission Wallet ['AccountTransfer']",
        "readOnly is 1, wanted 0",
        "IPs are ['*'], wanted ['10.0.0.1']",
    ]


# ------------------------------------------------------------------------------------ clocks
@given(aware, st.timedeltas(min_value=-timedelta(days=30), max_value=timedelta(days=30)))
def test_planning_expiry_is_never_later_than_either_reading(reported, offset):
    planned = planning_expiry(reported, offset)
    assert planned is not None
    assert planned <= reported
    assert planned <= reported - offset


def test_offset_threshold():
    assert not offset_is_large(timedelta(seconds=30))
    assert offset_is_large(timedelta(seconds=-31))
    assert planning_expiry(None, timedelta(days=1)) is None
