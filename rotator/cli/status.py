"""`rotator status [NAME...] [--json]`: every managed key as Bybit and Vault see it, and what the
daemon will do next and why. Read-only (`Engine.inspect`).

Exit 0 when every key is healthy; 1 when a key is failing, escalated or expired, or its account
could not be read; 2 for usage and config errors.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, load_config
from rotator.cli.output import (
    HEALTHY,
    account_errors,
    days_left,
    explain,
    fmt_relative,
    fmt_time,
    iso,
    key_health,
    known_keys,
    open_runtime,
    print_table,
    setup_cli_logging,
    verbose_option,
)
from rotator.model import fingerprint, short_key_id
from rotator.rotation import AccountReport, KeyReport, ReconcileResult

SCHEMA_VERSION = 1
"""Bumped only when a field of `status --json` changes meaning or goes away (additions keep it)."""


def key_json(report: KeyReport, now: datetime) -> dict[str, Any]:
    return {
        "name": report.name,
        "account": report.account,
        "sub_uid": report.sub_uid,
        "key_id_short": short_key_id(report.key_id) if report.key_id else None,
        "key_fp": fingerprint(report.key_id) if report.key_id else None,
        "state": report.state,
        "health": key_health(report, now),
        "expires_at": iso(report.expires_at),
        "days_left": days_left(report.expires_at, now),
        "renewal_at": iso(report.renewal_at),
        "next_action": report.next_action,
        "next_at": iso(report.next_at),
        "reason": explain(report.reason),
        "last_error": report.last_error,
        "escalated": report.escalated,
        "rotations": report.rotations,
        "last_rotation_at": iso(report.last_rotation_at),
    }


def account_json(report: AccountReport) -> dict[str, Any]:
    return {
        "name": report.name,
        "master_ok": report.master_ok,
        "master_expires_at": iso(report.master_expires_at),
        "password_changed_at": iso(report.password_changed_at),
        "orphans": list(report.orphans),
        "error": report.error,
    }


def status_json(result: ReconcileResult, now: datetime) -> dict[str, Any]:
    keys = [key_json(k, now) for k in result.keys]
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "healthy": is_healthy(result, now),
        "accounts": [account_json(a) for a in result.accounts],
        "keys": keys,
    }


def is_healthy(result: ReconcileResult, now: datetime) -> bool:
    return not account_errors(result.accounts) and all(
        key_health(k, now) in HEALTHY for k in result.keys
    )


def print_status(result: ReconcileResult, now: datetime) -> None:
    rows = []
    for k in result.keys:
        left = days_left(k.expires_at, now)
        next_step = k.next_action or "-"
        if k.next_at is not None and k.next_action not in ("", "none"):
            next_step = f"{k.next_action} {fmt_relative(k.next_at, now)}"
        rows.append(
            [
                k.name,
                k.account,
                str(k.sub_uid),
                short_key_id(k.key_id) if k.key_id else "-",
                fmt_time(k.expires_at),
                "never" if left is None else f"{left:.1f}",
                k.state if key_health(k, now) in HEALTHY else key_health(k, now),
                next_step,
                explain(k.reason) or "-",
                k.last_error or "-",
            ]
        )
    print_table(
        [
            "KEY",
            "ACCOUNT",
            "SUB UID",
            "KEY ID",
            "EXPIRES",
            "DAYS LEFT",
            "STATE",
            "NEXT",
            "WHY",
            "LAST ERROR",
        ],
        rows,
        style_column=6,
        wrap=(7, 8, 9),
    )
    for account in result.accounts:
        if account.error:
            click.echo(f"account {account.name}: FAILING: {account.error}")
            continue
        master = (
            "never expires"
            if account.master_expires_at is None
            else f"expires {fmt_time(account.master_expires_at)} "
            f"({fmt_relative(account.master_expires_at, now)})"
        )
        line = f"account {account.name}: master key ok, {master}"
        if account.password_changed_at is not None:
            line += f"; password changed {fmt_time(account.password_changed_at)}"
        click.echo(line)
        if account.orphans:
            click.echo(
                f"account {account.name}: {len(account.orphans)} key(s) tagged by the rotator but "
                f"managed by no record (fingerprints {', '.join(account.orphans)}): delete them "
                "in the Bybit web UI if nobody uses them"
            )


@click.command("status")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
@config_option
@verbose_option
def command(names: tuple[str, ...], as_json: bool, config_path: str, verbose: bool) -> None:
    """Show every key (or the NAMEs): expiry, state, the next action, when, and why.

    Exit 0 when all are healthy, 1 when any is failing, escalated or expired.
    """
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    only = known_keys(cfg, names) or None
    with open_runtime(cfg) as runtime:
        result = runtime.engine.inspect(only=only)
        now = runtime.clock.now()
    if as_json:
        click.echo(json.dumps(status_json(result, now), indent=2))
    else:
        print_status(result, now)
    sys.exit(EXIT_OK if is_healthy(result, now) else EXIT_FAILURE)
