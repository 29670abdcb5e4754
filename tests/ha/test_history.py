"""The history checker on hand-made histories: a clean one passes, each broken rule is caught."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from history import ConsumerVersion, HandOff, History, KeyEvent, check
from rotator.model import fingerprint

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD, NEW, LOST = "OLDKEY00000000000001", "NEWKEY00000000000002", "LOSTKEY0000000000003"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(seq: int, kind: str, s: float, key: str, note: str = "rotator:r2:bot") -> KeyEvent:
    return KeyEvent(seq=seq, kind=kind, wall=at(s), api_key=key, uid=2001, note=note, by="master")


def clean() -> History:
    """r1 made OLD; r2 makes NEW, promotes it at 12 s, hands it off at 13 s, revokes OLD at 20 s."""
    return History(
        key_name="bot",
        sub_uid=2001,
        events=[
            ev(1, "created", 0, OLD, "rotator:r1:bot"),
            ev(2, "created", 10, NEW),
            ev(3, "deleted", 20, OLD, "rotator:r1:bot"),
        ],
        consumer=[
            ConsumerVersion(version=1, created=at(1), api_key=OLD),
            ConsumerVersion(version=2, created=at(12), api_key=NEW),
        ],
        handoffs=[
            HandOff(at=at(2), key_fp=fingerprint(OLD), rotation_id="r1", pid=11),
            HandOff(at=at(13), key_fp=fingerprint(NEW), rotation_id="r2", pid=12),
        ],
        notifications=[{"kind": "rotation_completed", "subject": "bot"}],
        completed_rotations=1,
    )


def test_a_clean_history_passes():
    """One create per rotation, revoke after promotion, live keys handed off: no violation."""
    assert check(clean()) == []


def test_a_key_deleted_while_the_consumer_points_at_it():
    """The issue's stale verify: the promoted key deleted on Bybit."""
    h = clean()
    h = replace(h, events=[*h.events, ev(4, "deleted", 14, NEW)])
    found = check(h)
    assert any("while Vault's consumer record pointed at it" in v for v in found), found


def test_revoking_the_old_key_before_promotion():
    """The old key deleted at 11 s while the consumer still held it (promotion came at 12 s)."""
    h = clean()
    events = [e if e.seq != 3 else replace(e, wall=at(11)) for e in h.events]
    events.sort(key=lambda e: e.wall)
    found = check(replace(h, events=events))
    assert any(fingerprint(OLD) in v and "pointed at it" in v for v in found), found


def test_a_hand_off_of_a_revoked_key():
    """The issue's stale hand-off: OLD written to the bot after its revocation."""
    h = clean()
    late = HandOff(at=at(25), key_fp=fingerprint(OLD), rotation_id="r1", pid=11)
    found = check(replace(h, handoffs=[*h.handoffs, late]))
    assert any("deleted on Bybit" in v and "pid 11" in v for v in found), found
    assert any("bot holds a stale key" in v for v in found), found


def test_a_hand_off_of_a_key_not_yet_created():
    h = clean()
    early = HandOff(at=at(5), key_fp=fingerprint(NEW), rotation_id="r2", pid=12)
    found = check(replace(h, handoffs=[h.handoffs[0], early, h.handoffs[1]]))
    assert any("not created" in v for v in found), found


def test_two_concurrent_creates_in_one_rotation():
    """Two actors created in r2 (the second key deleted afterwards as unstored)."""
    h = clean()
    events = [*h.events[:2], ev(4, "created", 10.5, LOST), ev(5, "deleted", 11, LOST), h.events[2]]
    found = check(replace(h, events=events))
    assert any("rotation r2: 2 creates" in v and "concurrent actor" in v for v in found), found


def test_a_recreate_needs_the_protocols_own_path_in_the_log():
    """LOST created, deleted, then NEW: allowed only if a daemon logged `orphan.deleted`."""
    h = clean()
    events = [
        h.events[0],
        ev(2, "created", 8, LOST),
        ev(3, "deleted", 9, LOST),
        replace(h.events[1], seq=4),
        replace(h.events[2], seq=5),
    ]
    unexcused = replace(h, events=events)
    found = check(unexcused)
    assert any("no daemon logged" in v for v in found), found
    excused = replace(
        unexcused, protocol_events=[{"event": "orphan.deleted", "key_fp": fingerprint(LOST)}]
    )
    assert check(excused) == []


def test_a_recreate_after_the_first_key_was_promoted():
    h = clean()
    events = [
        h.events[0],
        ev(2, "created", 8, LOST),
        ev(3, "deleted", 9.5, LOST),
        replace(h.events[1], seq=4),
        replace(h.events[2], seq=5),
    ]
    consumer = [h.consumer[0], ConsumerVersion(version=2, created=at(9), api_key=LOST)]
    consumer += [replace(h.consumer[1], version=3)]
    ok_log = [{"event": "orphan.deleted", "key_fp": fingerprint(LOST)}]
    found = check(replace(h, events=events, consumer=consumer, protocol_events=ok_log))
    assert any("promoted to the consumer record" in v for v in found), found


def test_false_failure_notifications_and_duplicates_and_state_failures():
    h = replace(
        clean(),
        notifications=[
            {"kind": "rotation_completed", "subject": "bot"},
            {"kind": "rotation_completed", "subject": "bot"},
            {"kind": "rotation_failing", "subject": "bot", "text": "command hook did not finish"},
        ],
        state_failures=["v9: command hook did not finish"],
    )
    found = check(h)
    assert any("false notification rotation_failing" in v for v in found), found
    assert any("2 rotation_completed notifications for 1" in v for v in found), found
    assert any("false failure recorded in the state record" in v for v in found), found


def test_an_unknown_consumer_version_is_a_violation():
    """A destroyed consumer version no state ref names cannot be checked: say so, never skip it."""
    h = clean()
    found = check(replace(h, consumer=[h.consumer[0], replace(h.consumer[1], api_key=None)]))
    assert any("cannot tell which key" in v for v in found), found


def test_describe_shows_the_timeline_without_key_ids():
    text = clean().describe()
    assert fingerprint(NEW) in text
    assert OLD not in text
    assert NEW not in text


def test_an_orphan_swept_sooner_than_a_lease_can_change_hands():
    """The equal-host-names race: a second actor deletes, as an "orphan", the key the first one
    created 0.1 s earlier and is storing, then creates its own. Logged as orphan.deleted, still a
    violation: a dead actor's orphan can only be swept after its lease expired."""
    h = clean()
    events = [
        h.events[0],
        ev(2, "created", 9.0, LOST),
        ev(3, "deleted", 9.1, LOST),
        replace(h.events[1], seq=4),
        replace(h.events[2], seq=5),
    ]
    raced = replace(
        h,
        events=events,
        protocol_events=[{"event": "orphan.deleted", "key_fp": fingerprint(LOST)}],
        orphan_min_age=timedelta(seconds=1),
    )
    found = check(raced)
    assert any("its creator was still acting" in v for v in found), found
    assert check(replace(raced, injected_faults=frozenset({"lose_response"}))) == []
    slow = [events[0], ev(2, "created", 8.0, LOST), ev(3, "deleted", 9.5, LOST), *events[3:]]
    assert check(replace(raced, events=slow)) == []
