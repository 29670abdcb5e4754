"""`rotator demo`: simulated Bybit + throw-away OpenBao + the daemon, keys rotating every minute.

See rotator/demo.py. Exit 0 when stopped (Ctrl-C, or after --duration), 1 if it cannot start.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rotator import logs
from rotator.cli.common import EXIT_FAILURE


@click.command("demo")
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop after this many seconds (CI smoke tests); default: until Ctrl-C.",
)
@click.option("--no-status", is_flag=True, help="No live status table, log lines only.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Where the file hook writes the demo keys' env files (kept after exit).",
)
def command(duration: float | None, no_status: bool, out_dir: Path) -> None:
    """Try the rotator safely: a simulated Bybit, a throw-away OpenBao, minute-long keys."""
    from rotator.demo import DemoError, run_demo  # noqa: PLC0415 -- keep `rotator --help` light

    logs.configure("info", "auto", stream=sys.stderr)
    try:
        code = run_demo(
            duration_s=duration,
            show_status=not no_status,
            out_dir=out_dir.absolute(),
            echo=click.echo,
        )
    except DemoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(code)
