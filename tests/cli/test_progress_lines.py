"""The progress lines of `rotate` and `password-changed` come from the engine's observer, not from
its logs: with every log event renamed, or with the engine and the hooks not logging at all, the
commands print the same steps (rotator/progress.py, rotator/cli/progress.py)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import rotator.cli.password_changed  # loads every module the command logs from
import rotator.cli.rotate  # noqa: F401 (loads every module the command logs from)
import structlog
from cli_env import ALPHA_PERMS, Cli, toml_key
from rotator.cli.progress import progress_line
from rotator.progress import Progress, ProgressKind

FIRST_KEY = ["planned", "key_created", "verified", "promoted", "hook", "handed_off", "completed"]


class _Renamed:
    """A logger that logs every event under another name."""

    def __init__(self) -> None:
        self._inner = structlog.get_logger("renamed")

    def __getattr__(self, level: str) -> Any:
        method = getattr(self._inner, level)
        return lambda event, *args, **kw: method(f"renamed.{event}", *args, **kw)


class _Silent:
    """A logger that logs nothing."""

    def __getattr__(self, level: str) -> Any:
        return self._nothing

    @staticmethod
    def _nothing(*_args: Any, **_kw: Any) -> None:
        return None


def _replace_every_logger(monkeypatch: pytest.MonkeyPatch, fake: object) -> None:
    """Every rotator module's `log`: wherever the engine's steps live, none logs as before."""
    for name, module in list(sys.modules.items()):
        if name.startswith("rotator.") and hasattr(module, "log"):
            monkeypatch.setattr(module, "log", fake)


def _steps(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("logger", ["renamed", "silent"])
def test_rotate_prints_every_step_whatever_the_logs(cli: Cli, monkeypatch, logger: str):
    """Each step of a first rotation and the file hook's line, with -v showing (renamed) logs."""
    fake = _Renamed() if logger == "renamed" else _Silent()
    _replace_every_logger(monkeypatch, fake)
    target = cli.tmp / "alpha.env"
    keys = toml_key("alpha", 2001, ALPHA_PERMS, f'[[keys.hooks]]\ntype = "file"\npath = "{target}"')
    result = cli.run("rotate", "alpha", "-v", config=cli.config(keys=keys))
    assert result.exit_code == 0, result.output
    assert _steps(result.stdout) == FIRST_KEY
    assert f"hook         file {target} written" in result.stdout
    assert "rotation.planned" not in result.stderr.replace("renamed.rotation.planned", "")
    if logger == "renamed":
        assert "renamed.rotation.planned" in result.stderr, "the logs were on, under new names"


def test_password_changed_prints_each_keys_steps_with_logging_off(cli: Cli, monkeypatch):
    """--rotate-now: each key's lines, named by key, with the engine not logging at all."""
    _replace_every_logger(monkeypatch, _Silent())
    result = cli.run("password-changed", "--account", "main", "--rotate-now")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines() if line[:2] == "  "]
    for name in ("alpha", "beta"):
        mine = [line.split()[1] for line in lines if line.startswith(f"{name}: ")]
        assert mine == ["planned", "key_created", "verified", "promoted", "handed_off", "completed"]


def test_every_kind_has_a_line():
    """A new ProgressKind needs its line (or a reason to print nothing)."""
    for kind in ProgressKind:
        line = progress_line(Progress(kind=kind, detail="x"))
        assert line is not None
        assert line[12] == " " and line[13] != " ", f"{kind}: the text starts in column 14"
    assert progress_line(Progress(kind=ProgressKind.HOOK_RAN)) is None
    failed = Progress(kind=ProgressKind.HOOK_FAILED, hook="command", hook_number=2, detail="exit 1")
    assert progress_line(failed) == "hook_failed  command hook #2: exit 1; the old key is kept"
