"""The corners of the pure core that whole runs do not reach: Secret's guards, short key ids, and
state records with timestamps that are present but unusable. They hold the core's coverage floor
(100 %, `./dev test`)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from rotator.errors import StateCorrupt
from rotator.model import REDACTED, SECRET_REGISTRY, CreatedKey, Credentials, Secret, short_key_id
from rotator.policy import RotationPolicy, jitter_offset
from rotator.state import KeyState, Step

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_secret_guards():
    """A Secret is masked for structlog, equal only to an equal Secret, hashable by fingerprint,
    never pickled, and false when empty."""
    a, b = Secret("SECRETVALUE-0001"), Secret("SECRETVALUE-0001")
    assert a.__structlog__() == REDACTED
    with structlog.testing.capture_logs() as logs:
        structlog.get_logger().info("x", secret=a)
    assert "SECRETVALUE" not in repr(logs)
    assert a == b
    assert hash(a) == hash(b)
    assert a != "SECRETVALUE-0001"
    assert len({a, b}) == 1
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(a)
    assert not Secret("")
    assert a


def test_short_key_ids():
    assert short_key_id("ABCDEFGHIJKL") == "ABCD…KL"
    assert short_key_id("ABCDEF") == "AB…"


def test_key_ids_are_scrubbed_as_fingerprints():
    """Credentials and created keys register their key id (while they live): the redactor shows
    `<key_fp=…>`."""
    creds = Credentials(
        api_key="CREDKEYID000000000001", secret=Secret("CREDSECRET0000000000000001")
    )
    created = CreatedKey(
        key_id="NEWKEYID00000000000001",
        internal_id="1",
        note="n",
        read_only=False,
        permissions=(),
        secret=Secret("NEWSECRET000000000000000001"),
    )
    text = SECRET_REGISTRY.scrub("a CREDKEYID000000000001 b NEWKEYID00000000000001 c")
    assert "CREDKEYID" not in text
    assert "NEWKEYID" not in text
    assert text.count("<key_fp=") == 2
    assert creds.api_key != created.key_id
    SECRET_REGISTRY.add_key_id("short")  # too short to scrub: innocent words would go
    assert SECRET_REGISTRY.scrub("short") == "short"


def _record(**rotation_changes):
    rotation = {
        "id": "r1",
        "reason": "initial",
        "step": Step.PLANNED.value,
        "started_at": WHEN.isoformat(),
        **rotation_changes,
    }
    return {"schema": KeyState().to_record()["schema"], "rotation": rotation}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"started_at": "2026-01-01T00:00:00"}, "without a time zone"),
        ({"started_at": None}, "started_at is missing"),
        ({"started_at": "9999-12-31T23:59:59-01:00"}, "out of range"),
        ({"next_try": "0001-01-01T00:00:00+01:00"}, "out of range"),
        ({"step": "launched"}, "unknown step 'launched'"),
        ({"started_at": 1767225600}, "expected a timestamp, got int"),
        ({"started_at": "yesterday"}, "not an ISO 8601 timestamp"),
        ({"id": ""}, "expected a non-empty string"),
        ({"attempts": "3"}, "expected an integer"),
        ({"pending": ["not", "an", "object"]}, "expected an object"),
    ],
)
def test_unusable_timestamps_are_state_corrupt(changes, message):
    """A timestamp without a zone, a missing required one, one past the calendar in UTC, or an
    unknown step is StateCorrupt (a human fixes the record), never a crash of the reconcile.
    Deterministic: the hypothesis tests reach these lines only on some runs."""
    with pytest.raises(StateCorrupt, match=message):
        KeyState.from_record(_record(**changes))


def test_state_record_of_another_schema_is_state_corrupt():
    with pytest.raises(StateCorrupt, match="this version reads schema"):
        KeyState.from_record({"schema": 999})


def test_zero_jitter_is_no_offset():
    """jitter = 0s: every key renews exactly renew_before ahead."""
    assert jitter_offset("bot1:KEYID", RotationPolicy(jitter=timedelta(0))) == timedelta(0)
