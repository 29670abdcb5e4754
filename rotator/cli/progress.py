"""The progress lines `rotator rotate` and `rotator password-changed` print while the engine works:
one line per milestone the engine and the hooks report to their observer (rotator/progress.py).

Logs play no part: the commands print the same lines with logging off, and renaming a log event
changes nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from rotator.cli.output import fmt_time
from rotator.progress import Observer, Progress, ProgressKind

_LINES: dict[ProgressKind, str] = {
    ProgressKind.PLANNED: "planned      rotation {rotation_id} ({reason})",
    ProgressKind.ORPHAN_DELETED: "cleanup      deleted key {key_fp}: a key we created whose "
    "secret never reached Vault",
    ProgressKind.KEY_CREATED: "key_created  new key {key_fp} created on Bybit; its secret is held "
    "in the state record",
    ProgressKind.ROLLED_BACK: "rolled_back  new key {key_fp} deleted: its secret could not be "
    "stored",
    ProgressKind.VERIFY_FAILED: "verify_fail  {detail} (new key deleted)",
    ProgressKind.VERIFIED: "verified     the new key answers query-api and matches the config",
    ProgressKind.PROMOTED: "promoted     consumers now read the new key {key_fp} (Vault version "
    "{vault_version})",
    ProgressKind.HOOK_RAN: "hook         {detail}",
    ProgressKind.HOOK_FAILED: "hook_failed  {hook} hook #{hook_number}: {detail}; the old key is "
    "kept",
    ProgressKind.HANDOFF_FORCED: "forced       {detail}: old key expired before hand-off "
    "succeeded; revoking it anyway",
    ProgressKind.HANDED_OFF: "handed_off   consumers told; the old key (if any) may be revoked "
    "from {at} on",
    ProgressKind.COMPLETED: "completed    old key {old_key_fp} revoked on Bybit",
    ProgressKind.STEP_FAILED: "FAILED       step {step}: {detail}",
    ProgressKind.CONFLICT: "conflict     another rotator wrote the state record first; backing off",
}
"""One line per kind: a 12-character tag, then what happened; `-` stands for a field not set."""

FIRST_KEY = "completed    the first key of this name is in place"


def progress_line(event: Progress) -> str | None:
    """The line for one milestone, or None when it prints nothing (a hook with nothing to say)."""
    if event.kind is ProgressKind.HOOK_RAN and event.detail is None:
        return None
    if event.kind is ProgressKind.COMPLETED and event.old_key_fp is None:
        return FIRST_KEY
    values = {f.name: "-" if (v := getattr(event, f.name)) is None else v for f in fields(event)}
    values["at"] = fmt_time(event.at)
    return _LINES[event.kind].format_map(values)


def printer(show: Callable[[str | None, str], None]) -> Observer:
    """An observer that calls `show(key name, line)` for each milestone that has a line."""

    def observe(event: Progress) -> None:
        line = progress_line(event)
        if line is not None:
            show(event.key, line)

    return observe
