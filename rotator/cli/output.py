"""What the operator commands share: the runtime with one-line errors, time in and out, the health
of a key, and tables (rich on a TTY, tab-separated text otherwise). The progress lines of a
rotation are in rotator/cli/progress.py.

Exit codes (rotator.cli): 0 ok, 1 runtime failure (Vault or Bybit unreachable, a key failing),
2 bad usage or config.
"""

from __future__ import annotations

import enum
import getpass
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click

from rotator import logs, wiring
from rotator.adapters.hooks import build_hooks
from rotator.cli.common import EXIT_FAILURE, fail_usage
from rotator.config import Config
from rotator.durations import format_duration, parse_duration
from rotator.errors import ConfigError, RotatorError
from rotator.key_report import AccountReport, KeyReport, ReportState
from rotator.progress import Observer, ignore
from rotator.state import RotationReason

# ------------------------------------------------------------------------------ errors


def who_asks() -> str:
    """Who runs this command, for the intents a daemon carries out (logs, `status`)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def fail_runtime(message: str) -> NoReturn:
    """Print a runtime failure as one line (no traceback) and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_FAILURE)


def verbose_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--verbose",
        "-v",
        is_flag=True,
        help="Also show the engine's log lines (stderr), at the config's log level.",
    )(fn)


def setup_cli_logging(cfg: Config, *, verbose: bool) -> None:
    """Logs go to stderr. Without --verbose only our own output is shown: the commands render
    everything the engine found, and a failure is one line, not one line per layer."""
    logs.configure(cfg.logging.level if verbose else "critical", cfg.logging.format, sys.stderr)
    if not verbose:
        logging.getLogger().setLevel(logging.CRITICAL + 1)


@contextmanager
def open_runtime(
    cfg: Config, *, preflight: bool = True, hooks: bool = False, observer: Observer = ignore
) -> Iterator[wiring.Runtime]:
    """Build the runtime; with `preflight`, first prove Vault and Bybit answer. With `hooks`, the
    engine hands new keys off through the configured hooks, as the daemon does. `observer` hears
    of the engine's and the hooks' progress (rotator/progress.py).

    Any `RotatorError` inside the block ends the command: ConfigError with exit 2, the rest with
    exit 1, each as one line.
    """
    runtime: wiring.Runtime | None = None
    try:
        handoff = build_hooks(cfg, observer=observer) if hooks else None
        runtime = wiring.build(cfg, handoff=handoff, observer=observer)
        if preflight:
            ping_vault(runtime)
            ping_bybit(runtime)
        yield runtime
    except ConfigError as exc:
        fail_usage(exc.message)
    except RotatorError as exc:
        fail_runtime(exc.message)
    finally:
        if runtime is not None:
            runtime.close()


def _located(what: str, address: str, message: str) -> str:
    """`Vault at ADDR: login: cannot reach it (...)`: the address once, the layer name once."""
    message = message.replace(f"cannot reach {address}", "cannot reach it")
    return f"{what} at {address}: {message.removeprefix(what + ' ')}"


def ping_vault(runtime: wiring.Runtime) -> None:
    try:
        runtime.store.ping()
    except RotatorError as exc:
        address = runtime.config.vault.address
        raise type(exc)(_located("Vault", address, exc.message)) from None


def ping_bybit(runtime: wiring.Runtime) -> None:
    try:
        runtime.exchange.ping()
    except RotatorError as exc:
        raise type(exc)(_located("Bybit", runtime.config.bybit.url, exc.message)) from None


def known_keys(cfg: Config, names: Iterable[str]) -> list[str]:
    """The names as given, or exit 2 naming the keys the config knows."""
    names = list(names)
    known = [k.name for k in cfg.keys]
    unknown = [n for n in names if n not in known]
    if unknown:
        fail_usage(
            f"no key named {', '.join(repr(n) for n in unknown)} in the config; "
            f"known keys: {', '.join(known) or 'none'}"
        )
    return names


# ------------------------------------------------------------------------------ time

_RELATIVE = re.compile(r"^([+-])\s*(.+)$")


def parse_when(text: str, now: datetime) -> datetime:
    """`now`, a relative `+30d` / `-2h` (durations as in the config), or ISO 8601 (`Z` or an
    offset; a time without a zone is taken as UTC). Raises click.BadParameter (exit 2)."""
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        try:
            delta = parse_duration(relative.group(2))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        return now + delta if relative.group(1) == "+" else now - delta
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time; write ISO 8601 (2026-03-01T12:00:00Z), "
            "a relative time (+30d, -2h) or now"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def fmt_time(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fmt_relative(when: datetime | None, now: datetime) -> str:
    """`in 62d3h`, `5m12s ago`, `now`: the two largest units of whole seconds."""
    if when is None:
        return "-"
    delta = when - now
    if abs(delta) < timedelta(seconds=1):
        return "now"
    span = format_duration(timedelta(seconds=abs(delta) // timedelta(seconds=1)), units=2)
    return f"in {span}" if delta > timedelta(0) else f"{span} ago"


def days_left(expires_at: datetime | None, now: datetime) -> float | None:
    if expires_at is None:
        return None
    return round((expires_at - now) / timedelta(days=1), 2)


# ------------------------------------------------------------------------------ health


class KeyHealth(enum.StrEnum):
    """What `rotator status` says of a key (its `health` column and JSON field)."""

    OK = "ok"
    DUE = "due"
    IN_FLIGHT = "in_flight"
    FAILING = "failing"  # the last step failed, or the key's account could not be read
    ESCALATED = "escalated"  # past the latest safe moment with the rotation unfinished
    EXPIRED = "expired"  # the active key is past its expiry

    @property
    def is_healthy(self) -> bool:
        """False for the values that make `status` exit 1."""
        return self in HEALTHY

    @property
    def is_failing(self) -> bool:
        """The rotation failed or will not make it without a human."""
        return self in (KeyHealth.FAILING, KeyHealth.ESCALATED)


HEALTHY = frozenset({KeyHealth.OK, KeyHealth.DUE, KeyHealth.IN_FLIGHT})
"""Key health values that do not make `status` exit 1."""

REASONS: dict[str, str] = {
    RotationReason.INITIAL: "no key yet: the first one is created",
    RotationReason.EXPIRING: "inside the renewal window before expiry",
    RotationReason.PASSWORD_CHANGE: "the account password changed: keys created before it stop "
    "working",
    RotationReason.SPEC_CHANGED: "the live key differs from the config (permissions, IPs or "
    "readOnly): replaced by a key of the declared spec (on_drift = rotate)",
    RotationReason.ACTIVE_MISSING: "the active key is gone from Bybit (deleted or expired)",
    RotationReason.FORCED: "forced by the operator",
}


def explain(reason: str) -> str:
    """The engine's reason codes as sentences; other reasons are already sentences."""
    return REASONS.get(reason, reason)


def key_health(report: KeyReport, now: datetime) -> KeyHealth:
    """Where the key stands for an operator (see KeyHealth)."""
    if report.escalated or report.state == ReportState.ESCALATED:
        return KeyHealth.ESCALATED
    if report.state == ReportState.FAILED or report.last_error:
        return KeyHealth.FAILING
    if report.expires_at is not None and report.expires_at <= now:
        return KeyHealth.EXPIRED
    if report.state != ReportState.IDLE:
        return KeyHealth.IN_FLIGHT
    if report.next_at is not None and report.next_at <= now:
        return KeyHealth.DUE
    return KeyHealth.OK


def account_errors(accounts: Sequence[AccountReport]) -> list[str]:
    return [a.error for a in accounts if a.error]


# ------------------------------------------------------------------------------ tables


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


STYLES = {
    "ok": "green",
    "idle": "green",
    "due": "yellow",
    "in_flight": "yellow",
    "failing": "bold red",
    "failed": "bold red",
    "escalated": "bold red",
    "expired": "bold red",
    "FAIL": "bold red",
    "warn": "yellow",
}


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    style_column: int | None = None,
    wrap: Sequence[int] = (-1, -2),
) -> None:
    """`render_table` to stdout: rich on a TTY, tab-separated otherwise."""
    text = render_table(headers, rows, tty=stdout_is_tty(), style_column=style_column, wrap=wrap)
    click.echo(text, nl=False)


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    tty: bool,
    style_column: int | None = None,
    wrap: Sequence[int] = (-1, -2),
) -> str:
    """The one table renderer (`status`, `plan`, `password-changed`, the demo's live view).

    For a TTY a rich table, aligned to the terminal's width: only the `wrap` columns (free text)
    fold on a narrow terminal, the others keep their width; the `style_column` cell is coloured
    by its value (STYLES) where the terminal takes colour. Otherwise a header line and one
    tab-separated line per row (no colour, no padding: `cut -f` and `column -t -s $'\\t'` work
    on it). Each line ends with a newline.
    """
    if not tty:
        lines = ["\t".join(headers)]
        lines.extend("\t".join(cell.replace("\t", " ") for cell in row) for row in rows)
        return "".join(f"{line}\n" for line in lines)
    from rich.console import Console  # noqa: PLC0415 (only on a TTY: keeps piped runs light)
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=None, header_style="bold", pad_edge=False)
    folding = {i % len(headers) for i in wrap}
    for i, header in enumerate(headers):
        if i in folding:
            table.add_column(header, overflow="fold", ratio=1)
        else:
            table.add_column(header, no_wrap=True)
    for row in rows:
        cells = list(row)
        if style_column is not None:
            style = STYLES.get(cells[style_column])
            if style:
                cells[style_column] = f"[{style}]{cells[style_column]}[/]"
        table.add_row(*cells)
    console = Console(highlight=False)
    with console.capture() as captured:
        console.print(table)
    return captured.get()


def styled(text: str, tag: str) -> str:
    """Colour a checklist tag on a TTY only."""
    style = STYLES.get(tag)
    if style is None or not stdout_is_tty():
        return text
    fg = {"green": "green", "yellow": "yellow", "bold red": "red"}[style]
    return click.style(text, fg=fg, bold=style.startswith("bold"))
