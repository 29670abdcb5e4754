"""The engine and the hooks tell an observer of each milestone, in protocol order, against OpenBao
and the simulator; no event holds a secret or a full key id (rotator/progress.py)."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path

from rig import Rig, advance
from rotator.adapters.hooks import FileHandOff, HookChains, HookContext
from rotator.config import FileHook
from rotator.model import fingerprint
from rotator.progress import Progress, ProgressKind
from rotator.rotation import Engine

from fixtures.simulator import MASTER_KEY, MASTER_SECRET

K = ProgressKind
ROTATION = [K.PLANNED, K.KEY_CREATED, K.VERIFIED, K.PROMOTED, K.HOOK_RAN, K.HANDED_OFF]


def _engine(rig: Rig, heard: list[Progress], hook_path: Path) -> Engine:
    hooks = HookChains(
        {"alpha": [FileHandOff(FileHook(type="file", path=hook_path))]},
        {"alpha": HookContext(vault_path=f"{rig.prefix}/keys/alpha", key_file=None)},
        observer=heard.append,
    )
    return Engine(
        exchange=rig.client(),
        store=rig.store,
        clock=rig.clock,
        accounts=[rig.account],
        keys=rig.keys,
        handoff=hooks,
        sleep=advance(rig.clock),
        observer=heard.append,
    )


def _assert_no_secret(heard: list[Progress], secrets: set[str]) -> None:
    assert secrets
    for event in heard:
        text = " ".join([repr(event), *(str(getattr(event, f.name)) for f in fields(event))])
        for value in secrets:
            assert value not in text, f"{value[:6]}… in {event.kind}"


def test_a_first_key_and_a_rotation_in_order_without_secrets(rig: Rig, tmp_path: Path):
    """First key: every milestone through COMPLETED; 80 days on, a rotation up to HANDED_OFF; after
    the grace, COMPLETED names the revoked key. Each event names the key and its account."""
    rig.add_key("alpha")
    heard: list[Progress] = []
    engine = _engine(rig, heard, tmp_path / "alpha.env")

    engine.reconcile()
    first = rig.consumer("alpha")
    assert [e.kind for e in heard] == [*ROTATION, K.COMPLETED]
    planned, created, _, promoted, hook, handed_off, completed = heard
    assert (planned.reason, planned.rotation_id) == ("initial", created.rotation_id)
    assert created.key_fp == promoted.key_fp == fingerprint(first["api_key"])
    assert promoted.vault_version == 1
    assert (hook.hook, hook.hook_number, hook.detail) == (
        "file",
        1,
        f"file {tmp_path / 'alpha.env'} written",
    )
    assert handed_off.at == rig.clock.now()  # no old key: nothing to wait for
    assert completed.old_key_fp is None

    everything = [*heard]
    rig.clock.advance(timedelta(days=80))  # inside renew_before of the 90-day expiry
    heard.clear()
    engine.reconcile()
    second = rig.consumer("alpha")
    assert [e.kind for e in heard] == ROTATION
    assert heard[0].reason == "expiring"
    assert heard[-1].at is not None
    assert heard[-1].at > rig.clock.now() + timedelta(hours=23)

    everything += heard
    rig.clock.advance(timedelta(hours=25))
    heard.clear()
    engine.reconcile()
    assert [e.kind for e in heard] == [K.COMPLETED]
    assert heard[0].old_key_fp == fingerprint(first["api_key"])
    assert heard[0].key_fp == fingerprint(second["api_key"])

    everything += heard
    assert len(everything) == 14
    assert all(e.key == "alpha" and e.account == "main" for e in everything)
    _assert_no_secret(
        everything,
        {MASTER_KEY, MASTER_SECRET, first["api_key"], first["api_secret"], second["api_key"]}
        | {second["api_secret"]},
    )


def test_failures_are_told_with_the_step_and_the_next_try(rig: Rig, tmp_path: Path):
    """A hook that cannot write: HOOK_FAILED (which hook, why), then STEP_FAILED at the hand-off
    with the moment of the next try; the secret of the key being handed off is in no event."""
    rig.add_key("alpha")
    heard: list[Progress] = []
    engine = _engine(rig, heard, tmp_path / "missing-dir" / "alpha.env")

    engine.reconcile()
    kinds = [e.kind for e in heard]
    assert kinds == [K.PLANNED, K.KEY_CREATED, K.VERIFIED, K.PROMOTED, K.HOOK_FAILED, K.STEP_FAILED]
    hook_failed, step_failed = heard[-2:]
    assert (hook_failed.hook, hook_failed.hook_number) == ("file", 1)
    assert "cannot write" in (hook_failed.detail or "")
    assert step_failed.step == "promoted"
    assert step_failed.detail == hook_failed.detail
    assert step_failed.at is not None
    assert step_failed.at > rig.clock.now()
    record = rig.consumer("alpha")
    _assert_no_secret(heard, {MASTER_KEY, MASTER_SECRET, record["api_key"], record["api_secret"]})
