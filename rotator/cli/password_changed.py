"""`rotator password-changed --account NAME [--at TIME] [--rotate-now]`: record that the account's
login password changed. Bybit then ends every API key of the account (master and subs) 7 days
later, so every managed key becomes due at once; the master key must be replaced by hand.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from rotator.cli.acting import carry_out
from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, fail_usage, load_config
from rotator.cli.output import (
    explain,
    fail_runtime,
    fmt_relative,
    fmt_time,
    key_health,
    open_runtime,
    parse_when,
    print_table,
    setup_cli_logging,
    verbose_option,
    who_asks,
)
from rotator.cli.progress import printer
from rotator.cli.rotate import describe_outcome
from rotator.intents import Intent, IntentKind, IntentStatus
from rotator.key_report import KeyReport
from rotator.password_change import what_is_known


def _print_due(result: tuple[KeyReport, ...], now: datetime) -> None:
    rows = [
        [
            k.name,
            k.next_action,
            fmt_relative(k.next_at, now) if k.next_at else "-",
            fmt_time(k.expires_at),
            explain(k.reason),
        ]
        for k in result
    ]
    click.echo("the next reconcile (the daemon, or rotator rotate NAME) will:")
    print_table(["KEY", "ACTION", "WHEN", "KEY DIES", "WHY"], rows)


@click.command("password-changed")
@click.option("--account", "account_name", required=True, help="The account (config name).")
@click.option(
    "--at",
    "at_text",
    default="now",
    show_default=True,
    help="When the password changed: ISO 8601 or relative (-2h).",
)
@click.option("--rotate-now", is_flag=True, help="Rotate the account's keys right away.")
@config_option
@verbose_option
def command(
    account_name: str, at_text: str, rotate_now: bool, config_path: str, verbose: bool
) -> None:
    """Record that ACCOUNT's login password changed: all its keys stop working 7 days later.

    Every managed key of the account becomes due at once; the master key must be replaced by hand
    (the command prints how).
    """
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    try:
        account = cfg.account(account_name)
    except KeyError:
        fail_usage(
            f"no account named {account_name!r} in the config; known accounts: "
            + (", ".join(a.name for a in cfg.accounts) or "none")
        )
    names = [k.name for k in cfg.keys if k.account == account_name]
    grace = max(
        (cfg.policy_for(k).password_change_grace for k in cfg.keys if k.account == account_name),
        default=cfg.policy.password_change_grace,
    )

    def show(key: str | None, line: str) -> None:
        click.echo(f"  {key or '-'}: {line}")

    with open_runtime(cfg, hooks=True, observer=printer(show)) as runtime:
        now = runtime.clock.now()
        at = parse_when(at_text, now)
        if at > now:
            fail_usage(f"--at {at_text}: a password change is recorded after it happened")
        intent = Intent.new(
            IntentKind.PASSWORD_CHANGED,
            {"at": at.isoformat(), "rotate_now": rotate_now, "keys": names},
            now=now,
            by=who_asks(),
        )
        done = carry_out(cfg, runtime, account_name, intent, show=lambda line: show(None, line))
        if done.status is IntentStatus.FAILED:
            fail_runtime(done.error or "the password change was not recorded")
        result = done.reports
        dies = at + grace
        scope = cfg.policy.password_change_scope
        click.echo(
            f"recorded: the password of account {account_name} changed {fmt_time(at)}. "
            + what_is_known(scope, f"{fmt_time(dies)} ({fmt_relative(dies, now)})")
        )
        ok = True
        if names and rotate_now:
            click.echo(f"rotated {', '.join(names)}:")
            after = runtime.clock.now()
            for report in result:
                message, good = describe_outcome(
                    report, cfg.vault_path(cfg.key(report.name)), after
                )
                click.echo(message)
                ok = ok and good
        elif names:
            _print_due(result, now)
            ok = not any(key_health(k, now).is_failing for k in result)
            click.echo(
                "rotate them now: rotator password-changed ... --rotate-now, or rotator "
                "rotate NAME for each"
            )
        else:
            click.echo(f"account {account_name} has no managed keys")
    master_path = cfg.master_key_path(account)
    click.echo(
        f"\nthe MASTER key of account {account_name} dies {fmt_time(dies)} too, and only you can "
        "replace it:\n"
        "  1. Bybit web UI, logged in to the master account: API management > Create New Key > "
        "System-generated, read-write, with Wallet: Subaccount Transfer (needed to create and "
        "delete sub-account keys)\n"
        "  2. store it in Vault (the secret is read from stdin, never from the command line):\n"
        f"       BAO_ADDR={cfg.vault.address} bao kv put -mount={cfg.vault.mount} {master_path} "
        "api_key=<NEW KEY ID> api_secret=-\n"
        "     paste the secret, press Enter, then Ctrl-D\n"
        "  3. rotator check   (proves the new master key works)\n"
        "  4. delete the old master key in the web UI"
    )
    sys.exit(EXIT_OK if ok else EXIT_FAILURE)
