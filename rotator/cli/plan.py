"""`rotator plan [--at TIME]`: a dry run. What a reconcile would do now (or at TIME), and when each
key's next step falls, with the reason. Provably no side effect: only reads (Bybit GETs, Vault
reads) happen, through `Engine.inspect`.

`--at` separates reading from evaluating: Bybit refuses requests stamped far from its own clock, so
the facts (expiries, records, rotations in flight) are read *now*, and each key's schedule is then
computed at TIME with the pure functions of `rotator.policy`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime

import click

from rotator import key_sets, wiring
from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, fail_usage, load_config
from rotator.cli.output import (
    explain,
    fmt_relative,
    fmt_time,
    open_runtime,
    parse_when,
    print_table,
    setup_cli_logging,
    verbose_option,
)
from rotator.config import Config, describe_key_sets, managed_keys
from rotator.key_report import KeyReport, ReportState
from rotator.policy import (
    RotationPolicy,
    due_for_rotation,
    is_escalated,
    latest_safe_moment,
    renewal_moment,
)
from rotator.state import RotationReason


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedStep:
    """One key's next step as seen at the plan's moment."""

    key: str
    action: str  # what reconcile does (or would do) next
    when: datetime | None  # None: never (an IP-bound key) or unknown (the account is unreadable)
    acts: bool  # True: a reconcile at the plan's moment would take this step
    reason: str
    problem: bool = False  # the facts could not be read: plan exits 1


def plan_key(report: KeyReport, policy: RotationPolicy, now: datetime, at: datetime) -> PlannedStep:
    """Decide what a reconcile at `at` does with this key, from facts read at `now`."""
    name = report.name
    if report.state == ReportState.FAILED and report.next_at is None:
        # The key's account (or its record) could not be read: no facts, no plan.
        return PlannedStep(
            key=name,
            action="retry",
            when=at,
            acts=True,
            reason=report.last_error or explain(report.reason),
            problem=True,
        )
    if report.state != "idle":
        return _in_flight(report, now, at)
    if report.key_id is None:
        return PlannedStep(
            key=name,
            action="create the first key",
            when=at,
            acts=True,
            reason=explain(RotationReason.INITIAL),
        )
    if report.expires_at is None:
        return PlannedStep(
            key=name, action="none", when=None, acts=False, reason=explain(report.reason)
        )
    if at == now:
        return _idle_now(report, report.expires_at, now)
    return _idle_at(report, report.expires_at, policy, now, at)


def _in_flight(report: KeyReport, now: datetime, at: datetime) -> PlannedStep:
    """A rotation is under way: its next step keeps its time whatever TIME is."""
    when = report.next_at or now
    acts = when <= at
    reason = explain(report.reason)
    if report.last_error:
        reason = f"retrying after: {report.last_error}"
    if report.escalated:
        reason = f"ESCALATED: past the latest safe moment; {reason}"
    return PlannedStep(
        key=report.name,
        action=f"{report.next_action} (rotation in flight)",
        when=max(when, at) if acts else when,
        acts=acts,
        reason=reason,
    )


def _idle_now(report: KeyReport, expiry: datetime, now: datetime) -> PlannedStep:
    """Exactly what inspect decided (this also covers a password change or a missing key)."""
    when = report.next_at or now
    acts = when <= now
    reason = explain(report.reason)
    if not acts:
        reason = (
            f"expires {fmt_time(expiry)}; renewal starts {fmt_relative(when, now)}, ahead of "
            "expiry by renew_before plus jitter"
        )
    return PlannedStep(key=report.name, action="rotate", when=when, acts=acts, reason=reason)


def _idle_at(
    report: KeyReport, expiry: datetime, policy: RotationPolicy, now: datetime, at: datetime
) -> PlannedStep:
    """The schedule at a later TIME, from the policy's pure functions."""
    seed = f"{report.name}:{report.key_id}"
    renewal = renewal_moment(expiry, seed, policy)
    due_now = report.next_at is not None and report.next_at <= now
    if due_now:
        renewal = min(renewal, now)  # due already (e.g. a password change): stays due
    if not due_for_rotation(expiry, seed, policy, at) and renewal > at:
        return PlannedStep(
            key=report.name,
            action="rotate",
            when=renewal,
            acts=False,
            reason=f"expires {fmt_time(expiry)}; renewal starts {fmt_relative(renewal, at)} "
            "(from TIME), ahead of expiry by renew_before plus jitter",
        )
    if at >= expiry:
        reason = (
            f"EXPIRED at {fmt_time(expiry)}: consumers hold a dead key; the daemon rotates it at "
            f"{fmt_time(renewal)}, long before"
        )
    elif is_escalated(expiry, policy, at):
        reason = (
            f"ESCALATED: past the latest safe moment {fmt_time(latest_safe_moment(expiry, policy))}"
            f" (expiry {fmt_time(expiry)} minus grace and retry budget); due since "
            f"{fmt_time(renewal)}"
        )
    else:
        reason = f"due since {fmt_time(renewal)}: expires {fmt_time(expiry)}"
        if due_now and report.reason:
            reason = f"{explain(report.reason)}; {reason}"
    return PlannedStep(key=report.name, action="rotate", when=at, acts=True, reason=reason)


def _with_sets_from_bybit(cfg: Config, runtime: wiring.Runtime) -> Config:
    """`sub_uids = "all"` sets expanded as the daemon would now (Bybit's list, read only)."""
    found: dict[str, list[int]] = {}
    for account in {s.account for s in cfg.discovering_sets}:
        master = runtime.engine.master_credentials(account)
        for membership in key_sets.discover(
            cfg, account, master, runtime.exchange, runtime.store, {}
        ):
            found[membership.key_set] = list(membership.sub_uids)
            if membership.missing:
                click.echo(
                    f"key set {membership.key_set}: sub UIDs "
                    f"{', '.join(map(str, membership.missing))} have keys but Bybit lists them "
                    "no more; they stay managed"
                )
    if not found:
        return cfg
    grown = cfg.with_discovered(found)
    runtime.engine.keys = managed_keys(grown)
    return grown


@click.command("plan")
@click.option(
    "--at",
    "at_text",
    default=None,
    help="Evaluate at this time: ISO 8601 (2026-03-01T12:00:00Z) or relative (+30d). Default now.",
)
@config_option
@verbose_option
def command(at_text: str | None, config_path: str, verbose: bool) -> None:
    """Dry run: what a reconcile would do now (or at TIME), when each key's next step falls, and
    why. Reads only; changes nothing on Bybit or in Vault."""
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    with open_runtime(cfg) as runtime:
        if at_text is not None and parse_when(at_text, runtime.clock.now()) < runtime.clock.now():
            fail_usage(f"--at {at_text}: plan looks forward; give now or a later time")
        cfg = _with_sets_from_bybit(cfg, runtime)
        result = runtime.engine.inspect()
        # After inspect: a due key's next_at is inspect's own "now", never later than this.
        now = runtime.clock.now()
        at = now if at_text is None else parse_when(at_text, now)
        policies = {k.name: k.policy for k in runtime.engine.keys}
    steps = [plan_key(r, policies[r.name], now, at) for r in result.keys]
    click.echo(
        f"plan at {fmt_time(at)}"
        + ("" if at == now else f" ({fmt_relative(at, now)})")
        + f"; facts read from Bybit and Vault at {fmt_time(now)}; nothing was changed"
    )
    rows = [
        [
            s.key,
            ("NOW " if s.acts else "") + s.action,
            "never" if s.when is None else fmt_time(s.when),
            "-" if s.when is None else fmt_relative(s.when, at),
            s.reason,
        ]
        for s in steps
    ]
    print_table(["KEY", "ACTION", "WHEN", "FROM THEN", "WHY"], rows)
    for line in describe_key_sets(cfg):
        click.echo(line)
    acting = [s.key for s in steps if s.acts]
    if acting:
        click.echo(f"a reconcile at {fmt_time(at)} would act on: {', '.join(acting)}")
    else:
        upcoming = sorted((s for s in steps if s.when is not None), key=lambda s: s.when or at)
        nxt = (
            f"; next: {upcoming[0].action} {upcoming[0].key} at {fmt_time(upcoming[0].when)} "
            f"({fmt_relative(upcoming[0].when, at)})"
            if upcoming
            else ""
        )
        click.echo(f"a reconcile at {fmt_time(at)} would do nothing{nxt}")
    failed = False
    for account in result.accounts:
        if account.error:
            failed = True
            click.echo(f"account {account.name}: cannot plan: {account.error}")
        elif account.master_expires_at is not None and account.master_expires_at <= at:
            expires = fmt_time(account.master_expires_at)
            click.echo(
                f"account {account.name}: the master key expires {expires}, before "
                f"{fmt_time(at)}: create a new one in the Bybit web UI and store it in Vault "
                "(rotator password-changed --help shows how)"
            )
    sys.exit(EXIT_FAILURE if failed or any(s.problem for s in steps) else EXIT_OK)
