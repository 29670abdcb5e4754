"""`rotator check`: is everything in place for the daemon to do its job? A checklist with fixes.

    config      valid (else exit 2, like every command)
    hooks       each command exists; each file hook's directory is writable; each config_file
                hook's file parses and holds its two fields (a dry run, nothing written)
    vault       reachable and the token authenticated; the token's capabilities cover every path
                the daemon reads and writes (sys/capabilities-self)
    bybit       reachable, clock in step; per account: the master key answers, is a master key,
                may create and delete sub keys, and when it expires; each sub UID exists
    tracked     each [[tracked]] key is found and its expiry read (as the reminders job will)

Exit 0 when nothing FAILs (warnings allowed), 1 otherwise, 2 for config errors.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import click

from rotator import wiring
from rotator.adapters import bot_config
from rotator.cli.check_signals import check_clock, master_expiry_advice
from rotator.cli.common import EXIT_FAILURE, EXIT_OK, config_option, load_config
from rotator.cli.output import (
    fmt_relative,
    fmt_time,
    ping_bybit,
    ping_vault,
    setup_cli_logging,
    styled,
    verbose_option,
)
from rotator.config import (
    CommandHook,
    Config,
    ConfigFileHook,
    FileHook,
    KeyConfig,
    WebhookHook,
    describe_key_sets,
    tracked_keys,
    webhook_url_problem,
)
from rotator.durations import format_duration
from rotator.errors import HandOffFailed, RotatorError
from rotator.model import Credentials, ExchangeKey, KeyKind, Secret, fingerprint
from rotator.reminders import Reminders, TrackedKind

MANAGE_PERMISSIONS = frozenset({"AccountTransfer", "SubMemberTransfer", "Withdraw"})
"""Bybit reference §3.0: a master key needs one of these (Wallet group) to manage sub keys."""
MASTER_EXPIRY_WARNING = timedelta(days=14)
WRITE = frozenset({"create", "read", "update"})


@dataclass(frozen=True, slots=True)
class Item:
    status: str  # ok | warn | FAIL
    text: str
    fix: str = ""


class Checklist:
    """Collects and prints items as they are decided."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    def add(self, status: str, text: str, fix: str = "") -> None:
        item = Item(status, text, fix)
        repeated = bool(self.items) and self.items[-1].fix == fix
        self.items.append(item)
        click.echo(f"{styled(status.ljust(5), status)} {text}")
        if fix and not repeated:  # a run of items with one fix shows it once, after the first
            click.echo(f"      fix: {fix}")

    def ok(self, text: str) -> None:
        self.add("ok", text)

    def warn(self, text: str, fix: str = "") -> None:
        self.add("warn", text, fix)

    def fail(self, text: str, fix: str) -> None:
        self.add("FAIL", text, fix)

    @property
    def failed(self) -> bool:
        return any(i.status == "FAIL" for i in self.items)


# ------------------------------------------------------------------------------ config, hooks
def check_config(cfg: Config, config_path: str, out: Checklist) -> None:
    out.ok(f"config {config_path}: {len(cfg.accounts)} account(s), {len(cfg.keys)} key(s)")
    for line in describe_key_sets(cfg):
        out.ok(line)
    for key in cfg.keys:
        policy = cfg.policy_for(key)
        binding = "bound to " + ", ".join(key.ips) if key.ips else "unbound (expires)"
        out.ok(
            f"key {key.name}: account {key.account}, sub UID {key.sub_uid}, {binding}, "
            f"renew {format_duration(policy.renew_before)} before expiry, "
            f"vault {cfg.vault_path(key)}"
        )


def check_hooks(cfg: Config, out: Checklist) -> None:
    for key in cfg.keys:
        for i, hook in enumerate(key.hooks):
            where = f"key {key.name} hook {i + 1} ({hook.type})"
            if isinstance(hook, CommandHook):
                _check_command(where, hook, out)
            elif isinstance(hook, FileHook):
                _check_file(where, hook, out)
            elif isinstance(hook, WebhookHook):
                _check_webhook(where, hook, out)
            else:
                _check_config_file(where, hook, out)


def _check_command(where: str, hook: CommandHook, out: Checklist) -> None:
    program = hook.argv[0]
    if os.sep in program:
        path = Path(program)
        if not path.is_absolute():
            out.warn(
                f"{where}: {program} is a relative path: it depends on the daemon's working "
                "directory",
                "give an absolute path",
            )
        if path.is_file() and os.access(path, os.X_OK):
            out.ok(f"{where}: {program} is executable")
        else:
            out.fail(
                f"{where}: {program} does not exist or is not executable",
                f"install it, or `chmod +x {program}`, or fix argv in the config",
            )
        return
    found = shutil.which(program)
    if found:
        out.ok(f"{where}: {program} found at {found}")
    else:
        out.fail(
            f"{where}: {program} is not on PATH ({os.environ.get('PATH', '')})",
            "install it, or give its absolute path in argv",
        )


def _check_file(where: str, hook: FileHook, out: Checklist) -> None:
    directory = hook.path.parent if str(hook.path.parent) else Path()
    if directory.is_dir():
        if os.access(directory, os.W_OK | os.X_OK):
            out.ok(f"{where}: directory {directory} is writable")
        else:
            out.fail(
                f"{where}: directory {directory} is not writable by this user",
                f"let the service user write it (chown/chmod {directory}) or change path",
            )
        return
    out.fail(
        f"{where}: directory {directory} does not exist",
        f"mkdir -p {directory} (owned by the service user), or change path",
    )


def _check_config_file(where: str, hook: ConfigFileHook, out: Checklist) -> None:
    """The edit the hand-off will make, done in memory only: a typo in a field path shows now,
    not at the first rotation months later."""
    try:
        data, _ = bot_config.read_config_file(hook.path)
        text = data.decode("utf-8")
        fields = {hook.api_key_field: "x", hook.api_secret_field: "x"}
        bot_config.set_fields(text, hook.file_format, fields, hook.path)
    except UnicodeDecodeError:
        out.fail(f"{where}: {hook.path} is not UTF-8 text", "save it as UTF-8")
        return
    except HandOffFailed as exc:
        out.fail(f"{where}: {exc.message.removeprefix('config_file hook: ')}", "fix the file")
        return
    if not os.access(hook.path.parent, os.W_OK | os.X_OK):
        out.fail(
            f"{where}: directory {hook.path.parent} is not writable by this user (the file is "
            "replaced atomically through a temp file beside it)",
            "let the service user write the directory (systemd: ReadWritePaths=)",
        )
        return
    out.ok(
        f"{where}: {hook.path} ({hook.file_format}) holds {hook.api_key_field} and "
        f"{hook.api_secret_field}"
    )


def _check_webhook(where: str, hook: WebhookHook, out: Checklist) -> None:
    """The URL source exists and holds a URL the hook can post to (never printed: a token)."""
    if hook.url_env is not None:
        url, source = os.environ.get(hook.url_env, "").strip(), f"${hook.url_env}"
        if not url:
            out.fail(f"{where}: environment variable {hook.url_env} is not set", "set it")
            return
    elif hook.url_file is not None:
        source = str(hook.url_file)
        try:
            url = hook.url_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            out.fail(f"{where}: cannot read {hook.url_file}", "create it, readable by the service")
            return
        if not url:
            out.fail(f"{where}: {hook.url_file} is empty", "write the webhook URL into it")
            return
    else:
        out.ok(f"{where}: URL set in the config")
        return
    Secret(url)  # a URL may carry a token: the log redactor learns it
    problem = webhook_url_problem(url)
    if problem is not None:
        out.fail(
            f"{where}: the URL in {source} {problem}",
            'write a full URL like "https://hooks.example/rotated" (http or https, with a host)',
        )
    else:
        out.ok(f"{where}: URL in {source} is a valid http(s) URL")


# ------------------------------------------------------------------------------ vault
@dataclass(frozen=True, slots=True)
class Need:
    path: str  # full API path
    caps: frozenset[str]
    why: str
    required: bool = True  # False: only a warning when missing


def vault_needs(cfg: Config, runtime: wiring.Runtime) -> list[Need]:
    """Every path the daemon touches, the capabilities it needs there, and why."""
    store = runtime.store
    needs: list[Need] = []
    for account in cfg.accounts:
        master = cfg.master_key_path(account)
        state = cfg.account_state_path(account)
        needs += [
            Need(
                store.data_path(master),
                frozenset({"read"}),
                f"read account {account.name}'s master key",
            ),
            Need(store.data_path(state), WRITE, f"record account {account.name}'s state"),
        ]
    for key in cfg.keys:
        consumer, state = cfg.vault_path(key), cfg.state_path(key)
        needs += [
            Need(store.data_path(consumer), WRITE, f"write key {key.name} for its consumers"),
            Need(
                store.destroy_path(consumer),
                frozenset({"update"}),
                f"destroy key {key.name}'s revoked versions",
            ),
            Need(store.data_path(state), WRITE, f"record key {key.name}'s rotation state"),
            Need(
                store.destroy_path(state),
                frozenset({"update"}),
                f"destroy key {key.name}'s pending secrets once promoted",
            ),
            Need(
                store.metadata_path(state),
                frozenset({"read"}),
                f"read key {key.name}'s state versions (tooling; the daemon itself does not)",
                required=False,
            ),
        ]
    return needs


def _granted(caps: Iterable[str]) -> frozenset[str]:
    got = frozenset(caps)
    if "deny" in got:
        return frozenset()
    if "root" in got:
        return frozenset({"create", "read", "update", "delete", "list", "patch", "sudo"})
    return got


def check_vault(cfg: Config, runtime: wiring.Runtime, out: Checklist) -> bool:
    """True when Vault answers and takes the token: the Bybit checks need the master keys."""
    if os.environ.get("VAULT_SKIP_VERIFY"):
        out.warn(
            "VAULT_SKIP_VERIFY is set and ignored: the rotator always verifies Vault's TLS "
            "certificate",
            "name Vault's CA instead: [vault] ca_cert or VAULT_CACERT; then unset "
            "VAULT_SKIP_VERIFY",
        )
    from_env = cfg.vault.from_environment("address")
    address = f"{cfg.vault.address} (from {from_env})" if from_env else cfg.vault.address
    try:
        ping_vault(runtime)
    except RotatorError as exc:
        unreachable = "cannot reach" in exc.message or "sealed" in exc.message
        where = f"{from_env}, or set [vault] address (it wins)" if from_env else "[vault] address"
        out.fail(
            exc.message,
            f"start/unseal Vault at {address}, or fix {where}"
            if unreachable
            else "give the daemon a valid token ([vault.auth]), e.g. from `bao token create "
            "-policy=rotator` with deploy/vault/rotator.hcl",
        )
        return False
    out.ok(f"vault {address}: reachable, token accepted (mount {cfg.vault.mount})")
    needs = vault_needs(cfg, runtime)
    try:
        caps = runtime.store.capabilities(sorted({n.path for n in needs}))
    except RotatorError as exc:
        out.fail(
            f"vault: cannot ask the token's capabilities: {exc.message}",
            'if it says permission denied, add path "sys/capabilities-self" { capabilities = '
            '["update"] } to the token\'s policy (deploy/vault/rotator.hcl has it); otherwise fix '
            "what the reply names and run check again",
        )
        return True
    missing = 0
    for need in needs:
        lacking = need.caps - _granted(caps.get(need.path, ()))
        if not lacking:
            continue
        text = (
            f"vault: the token lacks {'/'.join(sorted(lacking))} on {need.path}: cannot {need.why}"
        )
        fix = "grant it in the token's policy (see deploy/vault/rotator.hcl; adjust mount/prefix)"
        if need.required:
            missing += 1
            out.fail(text, fix)
        else:
            out.warn(text, fix)
    if not missing:
        out.ok(f"vault policy: the token may do all the daemon needs on {len(needs)} path(s)")
    for account in cfg.accounts:
        path = runtime.store.data_path(cfg.master_key_path(account))
        if _granted(caps.get(path, ())) & {"create", "update", "delete"}:
            out.warn(
                f"vault: the token may also overwrite {path}; the daemon only reads master keys",
                "least privilege: make the master path read-only (deploy/vault/rotator.hcl)",
            )
    return True


# ------------------------------------------------------------------------------ bybit
def _master_put_command(cfg: Config, master_path: str) -> str:
    return (
        f"store it: BAO_ADDR={cfg.vault.address} bao kv put -mount={cfg.vault.mount} "
        f"{master_path} api_key=<KEY ID> api_secret=-  (the secret is read from stdin)"
    )


def check_bybit(cfg: Config, runtime: wiring.Runtime, out: Checklist, *, vault_ok: bool) -> None:
    try:
        ping_bybit(runtime)
        server = runtime.exchange.server_time()
    except RotatorError as exc:
        out.fail(exc.message, "check [bybit] base_url/testnet and the network path to Bybit")
        return
    out.ok(f"bybit {cfg.bybit.url}: reachable (server time {fmt_time(server)})")
    check_clock(cfg, runtime, out)
    if not vault_ok:
        out.warn("bybit: master keys not checked: they live in Vault, which failed above")
        return
    for account in cfg.accounts:
        _check_account(cfg, runtime, account.name, out)
    check_tracked(cfg, runtime, out)


def check_tracked(cfg: Config, runtime: wiring.Runtime, out: Checklist) -> None:
    """Each [[tracked]] key can be found and its expiry read, as the reminders job will."""
    reminders = Reminders(keys=tracked_keys(cfg), store=runtime.store, exchange=runtime.exchange)
    for key in reminders.keys:
        where = f"tracked {key.name} ({key.kind.value}, account {key.account})"
        if key.kind is TrackedKind.MASTER:
            out.ok(f"{where}: the master key, whose expiry is checked above")
            continue
        try:
            expires = reminders.expiry(key, {})
        except RotatorError as exc:
            fix = (
                "check sub_uid and key_fp (printf %s KEYID | sha256sum | cut -c1-10)"
                if key.kind is TrackedKind.SUB_KEY
                else f"store the key's {{api_key, api_secret}} at Vault {key.credentials_path}"
            )
            out.fail(f"{where}: {exc.message}", fix)
            continue
        days = ", ".join(str(d) for d in key.days_before)
        when = f"expires {expires:%Y-%m-%d %H:%M}Z" if expires else "never expires"
        out.ok(f"{where}: found, {when}; reminders {days} days before")


def _check_account(cfg: Config, runtime: wiring.Runtime, name: str, out: Checklist) -> None:
    account = cfg.account(name)
    master_path = cfg.master_key_path(account)
    where = f"account {name}: master key"
    try:
        record = runtime.store.read(master_path)
    except RotatorError as exc:
        out.fail(f"{where}: cannot read Vault {master_path}: {exc.message}", "see the vault items")
        return
    api_key = record.data.get("api_key") if record else None
    api_secret = record.data.get("api_secret") if record else None
    if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key:
        out.fail(
            f"{where}: no usable record at Vault {cfg.vault.mount}/{master_path} "
            "(needs api_key and api_secret)",
            "create a master API key in the Bybit web UI, then "
            + _master_put_command(cfg, master_path),
        )
        return
    kind = KeyKind.RSA if record and record.data.get("kind") == "rsa" else KeyKind.HMAC
    master = Credentials(api_key=api_key, secret=Secret(api_secret), kind=kind)
    where = f"{where} {fingerprint(api_key)}"
    try:
        info = runtime.exchange.query_key(master)
    except RotatorError as exc:
        out.fail(
            f"{where}: Bybit refuses it: {exc.message}",
            "the key is wrong, deleted, expired or bound to other IPs: create a new master key "
            "in the web UI and " + _master_put_command(cfg, master_path),
        )
        return
    problems = _master_problems(cfg, info, where, master_path, out)
    now = runtime.clock.now()
    if info.expires_at is None:
        expiry = "never expires (IP-bound " + ", ".join(info.ips) + ")"
    else:
        expiry = f"expires {fmt_time(info.expires_at)} ({fmt_relative(info.expires_at, now)})"
        if info.expires_at - now < MASTER_EXPIRY_WARNING:
            out.warn(
                f"{where}: {expiry}; the rotator cannot renew the master key itself",
                master_expiry_advice(cfg, info, _master_put_command(cfg, master_path)),
            )
            expiry = ""
    if problems:
        out.warn(f"account {name}: sub UIDs not checked: the master key fails above")
        return
    if expiry:
        out.ok(f"{where}: works, is the master (UID {info.user_id}), may manage sub keys; {expiry}")
    _check_subs(cfg, runtime, name, master, out)


def _master_problems(
    cfg: Config, info: ExchangeKey, where: str, master_path: str, out: Checklist
) -> int:
    """Is it the master's key, read-write, with a Wallet permission that manages sub keys?"""
    problems = 0
    if info.is_master is False:
        problems += 1
        out.fail(
            f"{where}: is a sub-account key (UID {info.user_id}), not the master's",
            "store the MASTER account's key there: " + _master_put_command(cfg, master_path),
        )
    if info.read_only:
        problems += 1
        out.fail(
            f"{where}: is read-only: it cannot create or delete sub-account keys",
            "edit the key in the web UI to read-write (or create a new one and store it)",
        )
    wallet = set(dict(info.permissions).get("Wallet", ()))
    if not wallet & MANAGE_PERMISSIONS:
        problems += 1
        out.fail(
            f"{where}: lacks the permission create-sub-api and delete-sub-api need (Wallet: "
            f"AccountTransfer, SubMemberTransfer or Withdraw; it has Wallet: "
            f"{', '.join(sorted(wallet)) or 'none'})",
            "edit the key in the Bybit web UI: tick Assets > Subaccount Transfer "
            "(SubMemberTransfer)",
        )
    return problems


def _check_subs(
    cfg: Config, runtime: wiring.Runtime, name: str, master: Credentials, out: Checklist
) -> None:
    keys: list[KeyConfig] = [k for k in cfg.keys if k.account == name]
    if not keys:
        return
    try:
        members = {m.uid: m for m in runtime.exchange.list_sub_members(master)}
    except RotatorError as exc:
        out.fail(f"account {name}: cannot list its sub-accounts: {exc.message}", "see above")
        return
    for key in keys:
        member = members.get(key.sub_uid)
        if member is None:
            known = ", ".join(str(u) for u in sorted(members)) or "none"
            out.fail(
                f"key {key.name}: sub UID {key.sub_uid} is not a sub-account of account {name}",
                f"fix sub_uid of key {key.name} (this account's sub UIDs: {known})",
            )
        elif member.status != 1:
            state = {2: "login banned", 4: "frozen"}.get(member.status, f"status {member.status}")
            out.warn(
                f"key {key.name}: sub UID {key.sub_uid} is {state}",
                "unfreeze it in the web UI, or key creation may fail",
            )
        else:
            out.ok(f"key {key.name}: sub UID {key.sub_uid} exists ({member.username or 'no name'})")


@click.command("check")
@click.option(
    "--offline", is_flag=True, help="Check only the config and the hooks: contact nothing."
)
@config_option
@verbose_option
def command(offline: bool, config_path: str, verbose: bool) -> None:
    """Check the config, the hooks, Vault (reachable, token, policy) and Bybit (master keys, their
    permissions and expiry, sub UIDs). Exit 1 if anything FAILs."""
    cfg = load_config(config_path)
    setup_cli_logging(cfg, verbose=verbose)
    out = Checklist()
    check_config(cfg, config_path, out)
    check_hooks(cfg, out)
    if offline:
        _summary(out)
    try:
        runtime = wiring.build(cfg)
    except RotatorError as exc:
        out.fail(f"vault: {exc.message}", "fix [vault.auth]")
        _summary(out)
    try:
        vault_ok = check_vault(cfg, runtime, out)
        check_bybit(cfg, runtime, out, vault_ok=vault_ok)
    finally:
        runtime.close()
    _summary(out)


def _summary(out: Checklist) -> NoReturn:
    fails = sum(i.status == "FAIL" for i in out.items)
    warns = sum(i.status == "warn" for i in out.items)
    click.echo(f"\n{fails} failed, {warns} warning(s), {len(out.items) - fails - warns} ok")
    sys.exit(EXIT_FAILURE if out.failed else EXIT_OK)
