"""`rotator simulate`: run the Bybit simulator alone, for demos and for trying the product safely.

Prints exactly one line on stdout once listening (`simulator listening on http://HOST:PORT`),
then serves until SIGINT or SIGTERM and exits 0. A bad seed file exits 2 with a message naming the
file and field. Only the address given is bound.
"""

from __future__ import annotations

import re
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from rotator.addresses import parse_host_port
from rotator.cli.common import EXIT_OK, fail_usage
from rotator.clock import Clock, ManualClock, SystemClock
from rotator.durations import parse_duration
from rotator.errors import ConfigError

_MONTHS = re.compile(r"(\d+)\s*(?:mo|months?)")


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_host_port(text)
    except ValueError:
        fail_usage(f"--listen {text!r}: write HOST:PORT, e.g. 127.0.0.1:8080")


def _lifetime(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    months = _MONTHS.fullmatch(text.strip())
    if months:
        return {"key_lifetime_months": int(months.group(1))}
    try:
        return {"key_lifetime": parse_duration(text), "key_lifetime_months": None}
    except ValueError as exc:
        fail_usage(f"--key-lifetime: {exc}, or calendar months like 3months")


@click.command("simulate")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to bind.")
@click.option(
    "--seed",
    "seed_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML seed file: accounts, keys, options (docs/simulator.md).",
)
@click.option(
    "--key-lifetime",
    default=None,
    help="Lifetime of unbound keys: a duration (90d) or calendar months (3months).",
)
@click.option(
    "--manual-clock",
    is_flag=True,
    help="Freeze the simulator's clock at start; move it with POST /_sim/clock/advance.",
)
@click.option("--rng-seed", default=0, show_default=True, help="Seed of key ids and 5xx faults.")
def command(
    listen: str, seed_path: Path, key_lifetime: str | None, manual_clock: bool, rng_seed: int
) -> None:
    """Run the Bybit V5 API-key simulator until SIGINT/SIGTERM."""
    from rotator.simulator import Simulator  # noqa: PLC0415 -- keep `rotator --help` light
    from rotator.simulator.seed import apply_seed, load_seed  # noqa: PLC0415

    host, port = _listen(listen)
    clock: Clock = ManualClock(datetime.now(UTC)) if manual_clock else SystemClock()
    try:
        seed = load_seed(seed_path)
        options = seed.simulator_options(**_lifetime(key_lifetime))
        simulator = Simulator(clock=clock, options=options, seed=rng_seed)
        apply_seed(seed, simulator)
    except ConfigError as exc:
        fail_usage(exc.message)
    try:
        server = simulator.serve(host, port)
    except OSError as exc:
        fail_usage(f"--listen {listen}: cannot bind: {exc.strerror}")
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    click.echo(f"simulator listening on {server.base_url}")
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.close()
    raise SystemExit(EXIT_OK)
