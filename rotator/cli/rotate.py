"""`rotator rotate NAME [--force]`: rotate one key now, through the same protocol and fences as the
daemon. It never races the daemon: with a daemon holding the account's lease the request is queued
in Vault and the daemon carries it out (this command waits and prints the outcome); with none, the
command takes the lease itself for its duration (rotator/cli/acting.py).

Without --force a key that is not due is left alone (exit 0, with when it will be due); a rotation
in flight is moved on at once, skipping the backoff after a failure (never a grace period, never a
step another replica has claimed).
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from rotator.cli.acting import carry_out
from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, load_config
from rotator.cli.output import (
    explain,
    fail_runtime,
    fmt_relative,
    fmt_time,
    key_health,
    known_keys,
    open_runtime,
    setup_cli_logging,
    verbose_option,
    who_asks,
)
from rotator.cli.progress import printer
from rotator.intents import Intent, IntentKind, IntentStatus
from rotator.key_report import KeyReport
from rotator.model import short_key_id


def describe_outcome(report: KeyReport, vault_path: str, now: datetime) -> tuple[str, bool]:
    """What happened and what happens next; False when the rotation failed."""
    health = key_health(report, now)
    key = short_key_id(report.key_id) if report.key_id else "-"
    if health.is_failing:
        retry = (
            f"; the next try is {fmt_relative(report.next_at, now)} ({fmt_time(report.next_at)})"
            if report.next_at
            else ""
        )
        message = (
            f"{report.name}: rotation {health.upper()} at step '{report.next_action}': "
            f"{report.last_error or explain(report.reason)}{retry}; fix the cause, then "
            f"`rotator rotate {report.name}` retries at once"
        )
        return message, False
    if report.state == "idle":
        message = (
            f"{report.name}: rotated. Consumers read key {key} at Vault {vault_path}; "
            f"it expires {fmt_time(report.expires_at)}, the next rotation starts "
            f"{fmt_relative(report.next_at, now)} ({fmt_time(report.next_at)})"
        )
        return message, True
    if report.state == "handed_off":
        message = (
            f"{report.name}: new key {key} is live at Vault {vault_path}. The old key stays valid "
            f"for the grace period: the daemon (rotator run) revokes it "
            f"{fmt_relative(report.next_at, now)} ({fmt_time(report.next_at)}), or run "
            f"`rotator rotate {report.name}` after that"
        )
        return message, True
    message = (
        f"{report.name}: rotation paused at '{report.next_action}' ({explain(report.reason)}); "
        f"it continues {fmt_relative(report.next_at, now)} (daemon or `rotator rotate "
        f"{report.name}`)"
    )
    return message, True


@click.command("rotate")
@click.argument("name")
@click.option("--force", is_flag=True, help="Start a rotation even if the key is not due.")
@config_option
@verbose_option
def command(name: str, force: bool, config_path: str, verbose: bool) -> None:
    """Rotate key NAME now: create, verify, promote, hand off; the old key is revoked after the
    grace period. Safe while the daemon runs."""
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    known_keys(cfg, [name])
    vault_path = cfg.vault_path(cfg.key(name))

    def show(_key: str | None, line: str) -> None:
        click.echo(f"  {line}")

    with open_runtime(cfg, hooks=True, observer=printer(show)) as runtime:
        retry_now = False
        if not force:
            before = runtime.engine.inspect(only={name}).keys[0]
            now = runtime.clock.now()  # after inspect: a due key's next_at is inspect's "now"
            if before.state == "idle" and before.next_at is not None and before.next_at > now:
                click.echo(
                    f"{name} is not due: rotation starts {fmt_relative(before.next_at, now)} "
                    f"({fmt_time(before.next_at)}); it expires {fmt_time(before.expires_at)}. "
                    "Use --force to rotate now anyway."
                )
                sys.exit(EXIT_OK)
            if before.state == "idle" and before.next_at is None and not before.last_error:
                click.echo(
                    f"{name} needs no rotation: {explain(before.reason)}. "
                    "Use --force to rotate anyway."
                )
                sys.exit(EXIT_OK)
            # A rotation in flight (perhaps backing off after a failure) is what the operator
            # asks to move on: skip its backoff. Grace periods and other replicas' claims hold.
            retry_now = before.state != "idle"
        click.echo(f"rotating {name}" + (" (forced)" if force else ""))
        key = cfg.key(name)
        intent = Intent.new(
            IntentKind.ROTATE,
            {"key": name, "force": force or retry_now},
            now=runtime.clock.now(),
            by=who_asks(),
        )
        done = carry_out(cfg, runtime, key.account, intent, show=lambda line: show(None, line))
        now = runtime.clock.now()
    if done.status is IntentStatus.FAILED or not done.reports:
        fail_runtime(done.error or f"{name}: the rotation did not run")
    report = done.reports[0]
    message, ok = describe_outcome(report, vault_path, now)
    click.echo(message)
    sys.exit(EXIT_OK if ok else EXIT_FAILURE)
