"""`rotator adopt NAME --key-id ID [--secret-file FILE]`: take a key made by hand (e.g. in the web
UI) under management. The secret never comes from the command line (shell history, `ps`): it is
read from stdin (prompted without echo on a TTY) or from a file no other user may read. The key is
verified against Bybit (query-api signed with it) before it is stored at the key's Vault path.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import click

from rotator.cli.acting import carry_out
from rotator.cli.common import EXIT_OK, config_option, fail_usage, load_config
from rotator.cli.output import (
    fail_runtime,
    fmt_relative,
    fmt_time,
    known_keys,
    open_runtime,
    setup_cli_logging,
    verbose_option,
    who_asks,
)
from rotator.intents import Intent, IntentKind, IntentStatus
from rotator.model import Secret, fingerprint, short_key_id


def read_secret_file(path: Path) -> str:
    """The file's content, stripped; refused (exit 2) when other users may read it."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        fail_usage(f"--secret-file {path}: {exc.strerror or exc}")
    if mode & stat.S_IROTH:
        fail_usage(
            f"--secret-file {path} is readable by every user on this host (mode "
            f"{stat.S_IMODE(mode):04o}); run `chmod 600 {path}` (and consider the secret seen)"
        )
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail_usage(f"--secret-file {path}: cannot read it ({type(exc).__name__})")


def read_secret_stdin() -> str:
    if sys.stdin.isatty():
        value = str(click.prompt("API secret (not shown)", hide_input=True, err=True))
        return value.strip()
    return sys.stdin.read().strip()


@click.command("adopt")
@click.argument("name")
@click.option("--key-id", required=True, help="The Bybit API key id (not secret).")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the secret from this file (mode 600) instead of stdin.",
)
@config_option
@verbose_option
def command(
    name: str, key_id: str, secret_file: Path | None, config_path: str, verbose: bool
) -> None:
    """Take an existing key under management as key NAME.

    The secret is read from stdin (prompted without echo on a terminal) or --secret-file, never
    from an argument. The key must answer Bybit and match the config (sub UID, permissions, IPs);
    it is then stored at NAME's Vault path and rotated like any other.
    """
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    known_keys(cfg, [name])
    key_id = key_id.strip()
    if not key_id:
        fail_usage("--key-id is empty")
    value = read_secret_file(secret_file) if secret_file else read_secret_stdin()
    if not value:
        fail_usage("the secret is empty: pipe it on stdin or give --secret-file")
    secret = Secret(value)
    del value
    vault_path = cfg.vault_path(cfg.key(name))
    with open_runtime(cfg) as runtime:
        intent = Intent.new(
            IntentKind.ADOPT,
            {"key": name, "key_id": key_id, "secret": secret.reveal()},
            now=runtime.clock.now(),
            by=who_asks(),
        )
        done = carry_out(cfg, runtime, cfg.key(name).account, intent, show=click.echo)
        now = runtime.clock.now()
    if done.status is IntentStatus.FAILED or not done.reports:
        fail_runtime(done.error or f"{name}: the key was not adopted")
    report = done.reports[0]
    click.echo(
        f"adopted {short_key_id(key_id)} (fp {fingerprint(key_id)}) as {name}: verified on Bybit "
        f"and stored at Vault {cfg.vault.mount}/{vault_path}"
    )
    if report.expires_at is None:
        click.echo(f"{name}: the key never expires (IP-bound); nothing to rotate")
    else:
        click.echo(
            f"{name}: expires {fmt_time(report.expires_at)}; the next rotation starts "
            f"{fmt_relative(report.next_at, now)} ({fmt_time(report.next_at)})"
        )
    click.echo(
        "the key managed before (if any) stays on Bybit untouched: delete it in the web UI once "
        "nobody uses it"
    )
    sys.exit(EXIT_OK)
