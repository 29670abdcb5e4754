"""`rotator run`: the daemon (rotator/daemon/). Logs go to stdout: JSON under systemd and
Kubernetes, readable on a TTY. Exit codes: 0 stopped cleanly, 1 runtime failure, 2 bad config."""

from __future__ import annotations

import sys

import click

from rotator import config as config_mod
from rotator import logs
from rotator.cli.common import config_option, load_config


@click.command("run")
@config_option
def command(config_path: str) -> None:
    """Run the rotation service until SIGTERM (SIGHUP re-reads the config)."""
    cfg = load_config(config_path)
    logs.configure(cfg.logging.level, cfg.logging.format, cache_loggers=True)
    from rotator.daemon import Daemon  # noqa: PLC0415 -- keep `rotator --help` light

    daemon = Daemon(cfg, config_path=config_mod.resolve_path(config_path))
    sys.exit(daemon.run())
