"""docs/cli.md stays true: its config is valid, its JSON schema table names exactly the fields
`status --json` emits, and every operator command has a section."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from rotator import config
from rotator.cli import COMMANDS
from rotator.cli.status import account_json, key_json, status_json
from rotator.key_report import AccountReport, KeyReport, ReconcileResult

DOC = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
OPERATOR_COMMANDS = ("status", "plan", "rotate", "check", "password-changed", "adopt")


def documented(prefix: str) -> set[str]:
    """Field names in the schema table rows that start with `prefix` (`keys[].`, `accounts[].`)."""
    names: set[str] = set()
    for row in re.findall(r"^\| (`[^|]+) \|", DOC, flags=re.MULTILINE):
        cells = re.findall(r"`([^`]+)`", row)
        if not cells:
            continue
        if cells[0].startswith(prefix):
            names.add(cells[0].removeprefix(prefix))
            names.update(c for c in cells[1:] if "." not in c and "[" not in c)
        elif not prefix and "[" not in cells[0]:
            names.add(cells[0])
    return names


def test_config_example_is_valid():
    """The session's config parses."""
    block = re.search(r"```toml\n(.*?)```", DOC, flags=re.DOTALL)
    assert block is not None
    cfg = config.parse(block.group(1))
    assert [k.name for k in cfg.keys] == ["bot-alpha", "bot-beta"]


def test_schema_table_matches_the_json():
    """Every emitted field is documented, and nothing documented is missing."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    report = KeyReport(name="a", account="main", sub_uid=1, state="idle")
    result = ReconcileResult(
        started_at=now, finished_at=now, keys=(report,), accounts=(AccountReport(name="main"),)
    )
    assert documented("keys[].") == set(key_json(report, now))
    assert documented("accounts[].") == set(account_json(AccountReport(name="main")))
    top = set(status_json(result, now)) - {"keys", "accounts"}
    assert top <= documented("")


def test_every_operator_command_has_a_section():
    """One `## rotator NAME` heading per command, and each is registered."""
    for name in OPERATOR_COMMANDS:
        assert name in COMMANDS
        assert re.search(rf"^## `rotator {name}\b", DOC, flags=re.MULTILINE), name
