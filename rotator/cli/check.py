"""`rotator check`: is everything in place for the daemon to do its job? A checklist with fixes."""

from __future__ import annotations

import sys

import click

from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, load_config
from rotator.durations import format_duration


@click.command("check")
@config_option
def command(config_path: str) -> None:
    """Validate the config (and, with it, what the daemon will need)."""
    cfg = load_config(config_path)
    click.echo(
        f"ok    config {config_path}: {len(cfg.accounts)} account(s), {len(cfg.keys)} key(s)"
    )
    for key in cfg.keys:
        policy = cfg.policy_for(key)
        binding = "bound to " + ", ".join(key.ips) if key.ips else "unbound (expires)"
        click.echo(
            f"ok    key {key.name}: account {key.account}, sub UID {key.sub_uid}, {binding}, "
            f"renew {format_duration(policy.renew_before)} before expiry, "
            f"vault {cfg.vault_path(key)}"
        )
    sys.exit(EXIT_OK if cfg else EXIT_FAILURE)
