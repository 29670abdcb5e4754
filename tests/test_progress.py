"""The progress records and the observers' plumbing (rotator/progress.py)."""

from __future__ import annotations

import pytest
from rotator.model import Secret
from rotator.progress import Progress, ProgressKind, fan_out, ignore, shield
from structlog.testing import capture_logs


def test_detail_never_holds_a_known_secret() -> None:
    """A secret the process knows is masked in `detail`, whoever built the sentence."""
    secret = Secret("progress-secret-value-0123456789abcdef")
    event = Progress(kind=ProgressKind.STEP_FAILED, detail=f"failed with {secret.reveal()} inside")
    assert secret.reveal() not in (event.detail or "")
    assert (event.detail or "").startswith("failed with ")
    assert Progress(kind=ProgressKind.VERIFIED).detail is None


def test_fan_out_tells_every_observer_in_order_even_past_a_failing_one() -> None:
    """One observer that raises is logged and skipped; the others still hear the event."""
    heard: list[tuple[str, ProgressKind]] = []

    def broken(event: Progress) -> None:
        del event
        raise RuntimeError

    everyone = fan_out(
        lambda e: heard.append(("first", e.kind)), broken, lambda e: heard.append(("last", e.kind))
    )
    with capture_logs() as logs:
        everyone(Progress(kind=ProgressKind.PLANNED, key="alpha"))
    assert heard == [("first", ProgressKind.PLANNED), ("last", ProgressKind.PLANNED)]
    assert [e["event"] for e in logs] == ["progress.observer.failed"]


def test_fan_out_of_nobody_or_one_is_that_observer() -> None:
    """No wrapper around nothing; one observer is shielded, not wrapped twice."""
    assert fan_out() is ignore
    assert fan_out(ignore, ignore) is ignore
    heard: list[Progress] = []
    one = fan_out(heard.append, ignore)
    assert shield(one) is one
    assert fan_out(one) is one
    one(Progress(kind=ProgressKind.COMPLETED))
    assert [e.kind for e in heard] == [ProgressKind.COMPLETED]
    ignore(Progress(kind=ProgressKind.COMPLETED))  # nobody watches: nothing happens


def test_shield_swallows_only_exceptions() -> None:
    """A watcher's bug never fails the rotation; an interrupt still ends the program."""

    def interrupted(event: Progress) -> None:
        del event
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shield(interrupted)(Progress(kind=ProgressKind.CONFLICT))
