"""Hand-off hooks: tell a key's consumers that a new key is in Vault (implements ports.HandOff).

Per key, the `[[keys.hooks]]` entries run in config order; the first failure stops the chain and
raises `HandOffFailed`, so the engine keeps the old key alive and retries the hand-off later.
Every hook is idempotent: a retry writes the same file, runs the command again, posts again.

- file: the key as an env file (`NAME=value` lines) or as JSON (the Vault consumer record), written
  atomically: a temp file in the same directory, created 0600 from the start (os.open with
  O_EXCL), fsync, chmod to the configured mode, chown if asked, rename over the target, fsync of
  the directory. A reader sees the old file or the new one, never a half-written one.
- command: argv, no shell, with a timeout; its environment holds no secret (a small allow-list of
  the daemon's own variables plus ROTATOR_KEY_NAME, ROTATOR_KEY_FILE, ROTATOR_KEY_FP,
  ROTATOR_VAULT_PATH, ROTATOR_ROTATION_ID). Non-zero exit or timeout fails the hand-off. It runs in
  its own process group, which a timeout kills whole; on Linux it also gets SIGKILL when the
  daemon dies (PR_SET_PDEATHSIG), and `kill_running_hooks()` kills every running group at shutdown.
- webhook: POST of JSON {event, key, account, sub_uid, key_fp, expires_at, rotation_id,
  vault_path}: `key_fp` is the fingerprint of the new key id (the `key_fp` of the logs), never the
  key id or the secret. A non-2xx answer fails the hand-off. The URL is checked (http/https, a
  host) before anything is sent, and never quoted in a message: it may carry a token.

Any exception a hook raises is a hand-off failure (`HandOffFailed`), except `LeaseLost`: another
actor hands off, which is not a hook failure. Each hook's success or failure goes to the observer
(rotator/progress.py: HOOK_RAN, HOOK_FAILED); `rotator rotate` prints them, the daemon counts the
failures.

- config_file: sets the key and secret inside the bot's own JSON/YAML/TOML config
  (rotator/adapters/bot_config.py).

docs/hooks.md is the user's guide.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import json
import os
import pwd
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import structlog

from rotator.adapters.bot_config import ConfigFileHandOff
from rotator.adapters.files import fsync_directory
from rotator.config import (
    CommandHook,
    Config,
    ConfigFileHook,
    FileHook,
    WebhookHook,
    webhook_url_problem,
)
from rotator.errors import HandOffFailed, LeaseLost
from rotator.model import Secret, fingerprint
from rotator.ports import Fence, no_fence
from rotator.progress import Observer, Progress, ProgressKind, fan_out, ignore

log = structlog.get_logger(__name__)

# Variables a command hook inherits from the daemon; everything else (VAULT_TOKEN, secret-ids,
# webhook URLs in *_env variables) stays out of its environment.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR")
OUTPUT_TAIL = 400  # characters of a failed command's output kept in the log line

_BARE_VALUE = re.compile(r"^[A-Za-z0-9_./:+=@%,-]*$")

# ------------------------------------------------------------------ running command hooks
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[[int, int, int, int, int], int] | None:
    """libc's prctl, resolved once in the parent: the pre-exec function must do no imports and
    no lookups (it runs between fork and exec, where another thread may hold a lock)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[[int, int, int, int, int], int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()
_SIGKILL = int(signal.SIGKILL)
_REAP_WAIT_S = 5.0  # after killing a timed-out hook's group: how long to drain its output


def _die_with_parent() -> None:
    """Pre-exec (in the child): SIGKILL this process when the thread that started it dies.

    The kernel clears the setting on fork, so it covers the hook process itself, not what the
    hook starts in the background; those are in the hook's process group, which a timeout and
    `kill_running_hooks()` kill whole (and systemd's cgroup or the pod's teardown on a crash)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


_running_groups: set[int] = set()
_running_lock = threading.Lock()


def running_hook_groups() -> frozenset[int]:
    """Process group ids of the command hooks running now."""
    with _running_lock:
        return frozenset(_running_groups)


def kill_running_hooks() -> int:
    """SIGKILL the process group of every command hook still running; the daemon calls it at
    shutdown so no hook outlives it. Returns how many groups were signalled."""
    with _running_lock:
        groups = list(_running_groups)
    killed = 0
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
    if killed:
        log.warning("handoff.hooks_killed", groups=killed)
    return killed


class Hook(Protocol):
    @property
    def kind(self) -> str:
        """file, command, webhook, config_file: label `hook` of rotator_handoff_failures_total."""
        ...

    def run(self, key_name: str, record: Mapping[str, Any], context: HookContext) -> str | None:
        """Hand the record over; returns what was done, for progress ("file /x written"), or
        None. Raises HandOffFailed."""
        ...


@dataclass(frozen=True, slots=True)
class HookContext:
    """What every hook of one key may tell its consumer, none of it secret."""

    vault_path: str
    key_file: Path | None  # the first file hook's path, for the command hooks after it


# ---------------------------------------------------------------------------------- file
def env_quote(value: str) -> str:
    """A value for a `NAME=value` line that POSIX sh, systemd's EnvironmentFile and python-dotenv
    all read back unchanged. Plain tokens stay bare (docker --env-file keeps quotes literally);
    anything else is double-quoted with \\ " $ ` escaped. Newlines and control characters cannot
    be written portably and are refused."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise HandOffFailed("a value holds a control character; it cannot go in an env file")
    if _BARE_VALUE.match(value):
        return value
    escaped = re.sub(r'(["\\$`])', r"\\\1", value)
    return f'"{escaped}"'


def render_env(record: Mapping[str, Any], hook: FileHook) -> str:
    api_key, api_secret = _credentials(record)
    lines = (
        f"{hook.api_key_name}={env_quote(api_key)}",
        f"{hook.api_secret_name}={env_quote(api_secret)}",
    )
    return "\n".join(lines) + "\n"


def render_json(record: Mapping[str, Any]) -> str:
    _credentials(record)
    return json.dumps(dict(record), indent=2, sort_keys=True) + "\n"


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    owner: str | None = None,
    group: str | None = None,
) -> None:
    """Replace `path` with `data` atomically; the file is never readable by others, not even for
    an instant (created 0600, chmod to `mode` before the rename)."""
    directory = path.parent if str(path.parent) else Path()
    uid, gid = _ids(owner, group)
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never reuse (or follow a link at) an existing name; 0600 from the first instant.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
            if uid != -1 or gid != -1:
                try:
                    os.fchown(handle.fileno(), uid, gid)
                except PermissionError:
                    raise HandOffFailed(
                        f"cannot give {path} to owner {owner or '-'} / group {group or '-'}: not "
                        "permitted (the service has no CAP_CHOWN). Drop owner/group and use a "
                        "setgid directory owned by the bot's group instead (docs/hooks.md)"
                    ) from None
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_directory(directory)


def _ids(owner: str | None, group: str | None) -> tuple[int, int]:
    uid = gid = -1
    try:
        if owner is not None:
            uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
        if group is not None:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise HandOffFailed(
            f"file hook: no such {'user' if uid == -1 and owner else 'group'} "
            f"{owner if uid == -1 and owner else group!r} on this machine"
        ) from None
    return uid, gid


@dataclass(frozen=True, slots=True)
class FileHandOff:
    hook: FileHook
    kind: str = "file"

    def run(self, key_name: str, record: Mapping[str, Any], context: HookContext) -> str:
        del context
        text = render_env(record, self.hook) if self.hook.format == "env" else render_json(record)
        try:
            atomic_write(
                self.hook.path,
                text.encode(),
                mode=self.hook.mode,
                owner=self.hook.owner,
                group=self.hook.group,
            )
        except OSError as exc:
            raise HandOffFailed(
                f"file hook: cannot write {self.hook.path}: {exc.strerror or exc}; check that the "
                "directory exists and the service may write there"
            ) from None
        log.info(
            "handoff.file_written",
            key=key_name,
            path=str(self.hook.path),
            format=self.hook.format,
            mode=oct(self.hook.mode),
        )
        return f"file {self.hook.path} written"


# ---------------------------------------------------------------------------------- command
@dataclass(frozen=True, slots=True)
class CommandHandOff:
    hook: CommandHook
    env: Mapping[str, str] | None = None  # the daemon's environment (tests inject one)
    kind: str = "command"

    def environment(
        self, key_name: str, record: Mapping[str, Any], context: HookContext
    ) -> dict[str, str]:
        source = os.environ if self.env is None else self.env
        api_key, api_secret = _credentials(record)
        env = {k: source[k] for k in INHERITED_ENV if k in source}
        env.setdefault("PATH", os.defpath)
        env |= {
            "ROTATOR_KEY_NAME": key_name,
            "ROTATOR_KEY_FILE": str(context.key_file) if context.key_file else "",
            "ROTATOR_KEY_FP": fingerprint(api_key),
            "ROTATOR_VAULT_PATH": context.vault_path,
            "ROTATOR_ROTATION_ID": str(record.get("rotation_id") or ""),
        }
        # Belt and braces: nothing inherited may carry the key or its secret.
        return {k: v for k, v in env.items() if api_secret not in v and api_key not in v}

    def run(self, key_name: str, record: Mapping[str, Any], context: HookContext) -> str:
        argv = list(self.hook.argv)
        timeout = self.hook.timeout.total_seconds()
        try:
            proc = subprocess.Popen(
                argv,
                env=self.environment(key_name, record, context),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group: a timeout or shutdown kills it and its children
                preexec_fn=_die_with_parent if _PRCTL is not None else None,  # noqa: PLW1509 (see _die_with_parent)
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            detail = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            )
            raise HandOffFailed(f"command hook {argv[0]!r} cannot start: {detail}") from None
        with _running_lock:
            _running_groups.add(proc.pid)
        try:
            output = self._wait(proc, argv[0], timeout)
        finally:
            with _running_lock:
                _running_groups.discard(proc.pid)
        tail = output.decode(errors="replace")[-OUTPUT_TAIL:].strip()
        if proc.returncode != 0:
            log.warning(
                "handoff.command_failed",
                key=key_name,
                command=argv[0],
                exit_code=proc.returncode,
                output=tail,
            )
            raise HandOffFailed(f"command hook {argv[0]!r} exited with {proc.returncode}")
        log.info("handoff.command_ran", key=key_name, command=argv[0], exit_code=0)
        return f"command {argv[0]} ran (exit 0)"

    @staticmethod
    def _wait(proc: subprocess.Popen[bytes], program: str, timeout: float) -> bytes:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.communicate(timeout=_REAP_WAIT_S)
            except subprocess.TimeoutExpired:
                # A process that left the group (setsid) still holds the output pipe: stop
                # reading; the hook process itself is dead and reaped.
                if proc.stdout is not None:
                    proc.stdout.close()
                proc.wait()
            raise HandOffFailed(
                f"command hook {program!r} did not finish within {timeout:g}s; killed its "
                "process group"
            ) from None
        return output


# ---------------------------------------------------------------------------------- webhook
@dataclass(frozen=True, slots=True)
class WebhookHandOff:
    hook: WebhookHook
    env: Mapping[str, str] | None = None
    transport: httpx.BaseTransport | None = None
    kind: str = "webhook"

    def url(self) -> Secret:
        """The URL, read at each call (a rotated url_file is picked up), checked (http/https and a
        host). It may carry a token: it is never quoted in a message."""
        url = self._raw_url()
        problem = webhook_url_problem(url.reveal())
        if problem is not None:
            raise HandOffFailed(f"webhook hook: {self.source()} {problem}; run `rotator check`")
        return url

    def source(self) -> str:
        """Where the URL comes from, for messages: never the URL itself."""
        if self.hook.url_env is not None:
            return f"the URL in ${self.hook.url_env}"
        if self.hook.url_file is not None:
            return f"the URL in {self.hook.url_file}"
        return "the configured URL"

    def _raw_url(self) -> Secret:
        if self.hook.url is not None:
            return Secret(self.hook.url)
        if self.hook.url_env is not None:
            value = (os.environ if self.env is None else self.env).get(self.hook.url_env, "")
            if not value:
                raise HandOffFailed(f"webhook hook: ${self.hook.url_env} is empty or unset")
            return Secret(value.strip())
        assert self.hook.url_file is not None  # noqa: S101 (config allows exactly one source)
        try:
            value = self.hook.url_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise HandOffFailed(
                f"webhook hook: cannot read {self.hook.url_file}: {exc.strerror or exc}"
            ) from None
        if not value:
            raise HandOffFailed(f"webhook hook: {self.hook.url_file} is empty")
        return Secret(value)

    def payload(
        self, key_name: str, record: Mapping[str, Any], context: HookContext
    ) -> dict[str, Any]:
        api_key, _ = _credentials(record)
        return {
            "event": "key.rotated",
            "key": key_name,
            "account": record.get("account"),
            "sub_uid": record.get("sub_uid"),
            "key_fp": fingerprint(api_key),
            "expires_at": record.get("expires_at"),
            "rotation_id": record.get("rotation_id"),
            "vault_path": context.vault_path,
        }

    def run(self, key_name: str, record: Mapping[str, Any], context: HookContext) -> str:
        url = self.url()
        host = urlsplit(url.reveal()).hostname or "?"
        try:
            with httpx.Client(
                timeout=self.hook.timeout.total_seconds(), transport=self.transport
            ) as client:
                response = client.post(url.reveal(), json=self.payload(key_name, record, context))
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # The exception text may quote the URL (and a token in it): name its class only.
            raise HandOffFailed(
                f"webhook hook to {host}: {type(exc).__name__} (no answer within "
                f"{self.hook.timeout.total_seconds():g}s or connection refused)"
            ) from None
        if not 200 <= response.status_code < 300:
            raise HandOffFailed(f"webhook hook to {host} answered HTTP {response.status_code}")
        log.info("handoff.webhook_sent", key=key_name, host=host, http_status=response.status_code)
        return f"webhook to {host} answered HTTP {response.status_code}"


# ---------------------------------------------------------------------------------- chains
class HookChains:
    """The HandOff port for the whole config: each key's hooks, in config order.

    `observer` hears of each hook's outcome (HOOK_RAN, HOOK_FAILED); `on_failure(key name, hook
    kind)` is a shorthand for an observer of the failures only.
    """

    def __init__(
        self,
        chains: Mapping[str, Sequence[Hook]],
        contexts: Mapping[str, HookContext],
        *,
        on_failure: Callable[[str, str], None] | None = None,
        observer: Observer = ignore,
    ) -> None:
        self.chains = dict(chains)
        self.contexts = dict(contexts)
        self._observer = fan_out(observer, _failures_only(on_failure))

    def deliver(self, key_name: str, record: dict[str, Any], *, fence: Fence = no_fence) -> None:
        hooks = self.chains.get(key_name, ())
        if not hooks:
            return
        _, api_secret = _credentials(record)
        Secret(api_secret)  # registers the value with the log redactor, if read back from Vault
        context = self.contexts[key_name]
        for index, hook in enumerate(hooks):
            fence()  # LeaseLost passes through: another actor hands off, not a hook failure
            try:
                done = hook.run(key_name, record, context)
            except LeaseLost:
                raise
            except HandOffFailed as exc:
                self._failed(key_name, record, hook, index, exc)
                raise
            except Exception as exc:  # noqa: BLE001 (every hook failure is a hand-off failure)
                # A bug or a setting no check caught: still a hand-off failure (recorded, counted,
                # retried). Only the class is named: the text may quote a URL or a value.
                failure = HandOffFailed(
                    f"{hook.kind} hook {index + 1} raised {type(exc).__name__}; run "
                    "`rotator check` and see the hook's settings"
                )
                self._failed(key_name, record, hook, index, failure)
                raise failure from None
            self._observer(
                Progress(
                    kind=ProgressKind.HOOK_RAN,
                    key=key_name,
                    account=_account(record),
                    hook=hook.kind,
                    hook_number=index + 1,
                    detail=done,
                )
            )

    def _failed(
        self, key_name: str, record: Mapping[str, Any], hook: Hook, index: int, exc: HandOffFailed
    ) -> None:
        api_key, _ = _credentials(record)
        log.warning(
            "handoff.hook_failed",
            key=key_name,
            hook=hook.kind,
            index=index,
            key_fp=fingerprint(api_key),
            error=exc.message,
        )
        self._observer(
            Progress(
                kind=ProgressKind.HOOK_FAILED,
                key=key_name,
                account=_account(record),
                key_fp=fingerprint(api_key),
                hook=hook.kind,
                hook_number=index + 1,
                detail=exc.message,
            )
        )


def _failures_only(on_failure: Callable[[str, str], None] | None) -> Observer:
    if on_failure is None:
        return ignore

    def failed(event: Progress) -> None:
        if event.kind is ProgressKind.HOOK_FAILED and event.key is not None:
            on_failure(event.key, event.hook or "?")

    return failed


def _account(record: Mapping[str, Any]) -> str | None:
    account = record.get("account")
    return account if isinstance(account, str) else None


def build_hooks(
    cfg: Config,
    *,
    env: Mapping[str, str] | None = None,
    on_failure: Callable[[str, str], None] | None = None,
    observer: Observer = ignore,
) -> HookChains:
    chains: dict[str, list[Hook]] = {}
    contexts: dict[str, HookContext] = {}
    for key in cfg.keys:
        hooks: list[Hook] = []
        key_file: Path | None = None
        for spec in key.hooks:
            if isinstance(spec, FileHook):
                hooks.append(FileHandOff(spec))
                key_file = key_file or spec.path.absolute()
            elif isinstance(spec, CommandHook):
                hooks.append(CommandHandOff(spec, env))
            elif isinstance(spec, ConfigFileHook):
                hooks.append(ConfigFileHandOff(spec))
            else:
                hooks.append(WebhookHandOff(spec, env))
        chains[key.name] = hooks
        contexts[key.name] = HookContext(vault_path=cfg.vault_path(key), key_file=key_file)
    return HookChains(chains, contexts, on_failure=on_failure, observer=observer)


def _credentials(record: Mapping[str, Any]) -> tuple[str, str]:
    api_key, api_secret = record.get("api_key"), record.get("api_secret")
    if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key:
        raise HandOffFailed("the consumer record lacks api_key/api_secret")
    return api_key, api_secret
