"""`rotator status [NAME...] [--json] [--live]`: every managed key, and what the daemon will do
next and why. Read-only.

By default it reads what the service last recorded: each account's snapshot in Vault, written by
the account's lease holder after every full reconcile (no Bybit call, fast at any scale), and says
how old it is. An account with no snapshot (no daemon has run), or `--live`, is swept now
(`Engine.inspect`: Bybit's listings and Vault's records).

Exit 0 when every key is healthy; 1 when a key is failing, escalated or expired, or its account
could not be read; 2 for usage and config errors.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from rotator import wiring
from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, load_config
from rotator.cli.output import (
    account_errors,
    days_left,
    explain,
    fmt_relative,
    fmt_time,
    iso,
    key_health,
    known_keys,
    open_runtime,
    ping_bybit,
    ping_vault,
    print_table,
    setup_cli_logging,
    verbose_option,
)
from rotator.config import Config
from rotator.errors import RotatorError
from rotator.key_report import AccountReport, KeyReport, ReconcileResult
from rotator.model import fingerprint, short_key_id
from rotator.reports import Snapshot

SWEEP_THREADS = 8
"""Accounts `status` sweeps at once (each has its own Bybit master and rate limits)."""
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
        "drift": None if report.drift is None else list(report.drift),
        "password_change_pending": report.password_change_pending,
    }


def account_json(report: AccountReport) -> dict[str, Any]:
    return {
        "name": report.name,
        "master_ok": report.master_ok,
        "master_expires_at": iso(report.master_expires_at),
        "password_changed_at": iso(report.password_changed_at),
        "password_change_pending_keys": report.password_change_pending_keys,
        "orphans": list(report.orphans or ()),
        "orphans_judged": report.orphans is not None,
        "orphans_kept": list(report.orphans_kept),
        "orphans_deleted": list(report.orphans_deleted),
        "error": report.error,
    }


@dataclass(frozen=True, slots=True)
class Source:
    """Where one account's rows come from: the holder's snapshot (with its age), or a sweep."""

    account: str
    kind: str  # snapshot | live
    written_at: datetime | None = None
    holder: str | None = None
    stale: bool = False  # older than 3 reconcile intervals: is the service running?

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "kind": self.kind,
            "written_at": iso(self.written_at),
            "holder": self.holder,
            "stale": self.stale,
        }


def status_json(
    result: ReconcileResult, now: datetime, sources: tuple[Source, ...] = ()
) -> dict[str, Any]:
    keys = [key_json(k, now) for k in result.keys]
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "healthy": is_healthy(result, now, sources),
        "sources": [s.to_json() for s in sources],
        "accounts": [account_json(a) for a in result.accounts],
        "keys": keys,
    }


def is_healthy(result: ReconcileResult, now: datetime, sources: tuple[Source, ...] = ()) -> bool:
    return (
        not account_errors(result.accounts)
        and all(key_health(k, now).is_healthy for k in result.keys)
        and not any(s.stale for s in sources)
    )


def gather(
    cfg: Config, runtime: wiring.Runtime, only: set[str] | None, *, live: bool
) -> tuple[ReconcileResult, tuple[Source, ...]]:
    """Snapshots where the service wrote them (unless `live`); a sweep for the rest."""
    now = runtime.clock.now()
    stale_after = cfg.policy.reconcile_interval * 3
    keys: list[KeyReport] = []
    accounts: list[AccountReport] = []
    sources: list[Source] = []
    to_sweep: list[str] = []
    for acfg in cfg.accounts:
        names = {k.name for k in cfg.keys if k.account == acfg.name}
        if only is not None and not names & only:
            continue
        snap = None if live else _snapshot(runtime, cfg.snapshot_path(acfg))
        if snap is None:
            to_sweep.append(acfg.name)
            continue
        keys.extend(k for k in snap.keys if only is None or k.name in only)
        accounts.append(snap.account)
        sources.append(
            Source(
                account=acfg.name,
                kind="snapshot",
                written_at=snap.written_at,
                holder=snap.holder,
                stale=now - snap.written_at > stale_after,
            )
        )
    if to_sweep:
        ping_bybit(runtime)
        for swept in _sweep(cfg, runtime, to_sweep, only):
            keys.extend(swept.keys)
            accounts.extend(swept.accounts)
        sources.extend(Source(account=name, kind="live") for name in to_sweep)
    order = {k.name: i for i, k in enumerate(cfg.keys)}
    keys.sort(key=lambda k: order.get(k.name, len(order)))
    result = ReconcileResult(
        started_at=now, finished_at=runtime.clock.now(), keys=tuple(keys), accounts=tuple(accounts)
    )
    return result, tuple(sources)


def _sweep(
    cfg: Config, runtime: wiring.Runtime, accounts: list[str], only: set[str] | None
) -> list[ReconcileResult]:
    """Inspect each account on its own thread (at most `SWEEP_THREADS` at once), as the daemon
    does: one account's rate-limited sweep does not wait for another's. In account order."""

    def inspect(account: str) -> ReconcileResult:
        wanted = {k.name for k in cfg.keys if k.account == account}
        return runtime.engine.inspect(only=wanted if only is None else wanted & only)

    with ThreadPoolExecutor(
        max_workers=max(1, min(SWEEP_THREADS, len(accounts))), thread_name_prefix="status"
    ) as pool:
        return list(pool.map(inspect, accounts))


def _snapshot(runtime: wiring.Runtime, path: str) -> Snapshot | None:
    try:
        current = runtime.store.read(path)
        return None if current is None else Snapshot.from_record(current.data, path)
    except RotatorError:
        return None  # unreadable: sweep instead


def print_sources(sources: tuple[Source, ...], now: datetime) -> None:
    for source in sources:
        if source.kind != "snapshot" or source.written_at is None:
            continue
        line = (
            f"account {source.account}: as recorded by the service ({source.holder}) "
            f"{fmt_relative(source.written_at, now)}"
        )
        if source.stale:
            line += (
                "; that is OLD: is `rotator run` running? `rotator status --live` sweeps Bybit now"
            )
        click.echo(line)


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
                fingerprint(k.key_id) if k.key_id else "-",
                fmt_time(k.expires_at),
                "never" if left is None else f"{left:.1f}",
                k.state if key_health(k, now).is_healthy else key_health(k, now),
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
            "KEY FP",
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
            line += _password_change_note(account)
        click.echo(line)
        for text in _orphan_lines(account):
            click.echo(f"account {account.name}: {text}")
    for k in result.keys:
        if k.drift:
            click.echo(
                f"key {k.name}: the live key differs from the config ({'; '.join(k.drift)}); "
                + (
                    "rotating to the config's spec"
                    if k.rotation_reason == "spec_changed"
                    else "see docs/runbook.md#rotatorkeydrift"
                )
            )


def _password_change_note(account: AccountReport) -> str:
    """A password change is news while keys still await their forced rotation, history after."""
    when = fmt_time(account.password_changed_at)
    if account.password_change_pending_keys:
        return (
            f"; PASSWORD CHANGED {when}: {account.password_change_pending_keys} key(s) "
            "still to rotate"
        )
    return f"; last password change {when} (its forced rotations are done)"


def _orphan_lines(account: AccountReport) -> list[str]:
    lines = []
    if account.orphans_deleted:
        lines.append(
            f"deleted {len(account.orphans_deleted)} tagged key(s) whose secret never reached "
            f"Vault (fingerprints {', '.join(account.orphans_deleted)})"
        )
    kept = set(account.orphans_kept)
    deletable = [fp for fp in account.orphans or () if fp not in kept]
    if deletable:
        lines.append(
            f"{len(deletable)} tagged key(s) whose secret never reached Vault (fingerprints "
            f"{', '.join(deletable)}): the next full reconcile deletes them"
        )
    if kept:
        lines.append(
            f"{len(kept)} tagged key(s) the rotator keeps, a key name not in the config or no "
            f"creation time from Bybit (fingerprints {', '.join(sorted(kept))}): it never deletes "
            "them, since a removed entry's key may still be in use; delete them in the Bybit web "
            "UI (their note names the old key) once no bot uses them"
        )
    return lines


@click.command("status")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
@click.option(
    "--live",
    is_flag=True,
    help="Sweep Bybit and Vault now instead of reading the service's last snapshot.",
)
@config_option
@verbose_option
def command(
    names: tuple[str, ...], as_json: bool, live: bool, config_path: str, verbose: bool
) -> None:
    """Show every key (or the NAMEs): expiry, state, the next action, when, and why.

    Exit 0 when all are healthy, 1 when any is failing, escalated or expired.
    """
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    only = known_keys(cfg, names) or None
    with open_runtime(cfg, preflight=False) as runtime:
        ping_vault(runtime)  # Bybit is pinged only if some account is swept
        result, sources = gather(cfg, runtime, set(only) if only else None, live=live)
        now = runtime.clock.now()
    if as_json:
        click.echo(json.dumps(status_json(result, now, sources), indent=2))
    else:
        print_status(result, now)
        print_sources(sources, now)
    sys.exit(EXIT_OK if is_healthy(result, now, sources) else EXIT_FAILURE)
