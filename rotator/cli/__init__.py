"""The `rotator` command. Each subcommand lives in its own module and is loaded on first use.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config (click's own usage errors are 2 too).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator

import click

from rotator import __version__

# name -> "module:attribute". A module is imported only when its command runs (or --help lists it
# and asks for its short help), so `rotator --version` stays fast and a broken optional dependency
# of one command cannot break the others.
COMMANDS: dict[str, str] = {
    "adopt": "rotator.cli.adopt:command",
    "check": "rotator.cli.check:command",
    "demo": "rotator.cli.demo:command",
    "password-changed": "rotator.cli.password_changed:command",
    "plan": "rotator.cli.plan:command",
    "rotate": "rotator.cli.rotate:command",
    "run": "rotator.cli.run:command",
    "simulate": "rotator.cli.simulate:command",
    "status": "rotator.cli.status:command",
}


# Installed libraries that structlog and httpx import whenever they can, for what the rotator never
# uses (rich tracebacks: rotator/logs.py renders them plain; httpx's own command line): ~4 MB of
# RSS in every process. Hidden while a command's module loads; the tables of `status` and `plan`
# still import rich on a TTY (rotator/cli/output.py). tests/test_lazy_imports.py checks it.
UNUSED_OPTIONAL = ("rich", "pygments")


@contextlib.contextmanager
def _hidden(names: tuple[str, ...]) -> Iterator[None]:
    """Imports inside the block see `names` as not installed (those not yet imported)."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # how the import system blocks one
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 (click API)
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        with _hidden(UNUSED_OPTIONAL):
            module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rotator")
def cli() -> None:
    """Keeps Bybit API keys from ever expiring: rotates them ahead of time through Vault."""


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="rotator", standalone_mode=True))
