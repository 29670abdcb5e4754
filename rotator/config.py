"""The config file: one TOML file parsed into frozen, validated objects.

No secret ever lives in the file: Vault tokens, AppRole secret-ids and webhook URLs come from files
(systemd credentials, Kubernetes mounts) or environment variables, named here by `*_file`/`*_env`.

`load(path)` raises `ConfigError` whose message names the file, the line where it can be found,
the key path (`keys[2].permissions.Spot`), what is wrong and how to fix it.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Strict,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rotator.addresses import parse_host_port
from rotator.drift import OnDrift
from rotator.durations import format_duration, parse_duration
from rotator.errors import ConfigError
from rotator.lease import LeaseSettings
from rotator.model import (
    MAX_KEYS_PER_ACCOUNT,
    AckMode,
    AckPolicy,
    KeySpec,
    ManagedAccount,
    ManagedKey,
    Permissions,
    normalize_permissions,
)
from rotator.password_change import PasswordChangeScope
from rotator.policy import RotationPolicy
from rotator.reminders import TrackedKey, TrackedKind
from rotator.secret_fields import is_secret_field

DEFAULT_CONFIG_PATH = Path("/etc/rotator/rotator.toml")
CONFIG_ENV = "ROTATOR_CONFIG"
MAX_IPS_PER_KEY = 30
MAX_MANAGED_PER_SUB_UID = MAX_KEYS_PER_ACCOUNT // 2
"""Each managed key needs room for its successor during a rotation: 10 of Bybit's 20."""
MAX_SET_SIZE = 20_000

# Permissions a sub-account key may hold, exactly as Bybit names them (reference §3.5, §3.9, §4).
SUB_KEY_PERMISSIONS: dict[str, frozenset[str]] = {
    "ContractTrade": frozenset({"Order", "Position"}),
    "Spot": frozenset({"SpotTrade"}),
    "Wallet": frozenset({"AccountTransfer", "SubMemberTransferList"}),
    "Options": frozenset({"OptionsTrade"}),
    "Derivatives": frozenset({"DerivativesTrade"}),
    "Exchange": frozenset({"ExchangeHistory"}),
    "Earn": frozenset({"Earn"}),
}

_NAME = re.compile(r"^[a-z0-9]([a-z0-9_.-]{0,62}[a-z0-9])?$")
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KiB; a megabyte is a mistake, not a config
ROTATOR_FOLDERS = (
    "state",
    "accounts",
    "leases",
    "intents",
    "snapshots",
    "ack",
    "reminders",
    "tracked",
)
"""Folders under the prefix that only the rotator writes: no key's vault_path may point there."""


def _duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError('write durations as text with a unit, like "14d", "24h" or "90s"')


def _within(low: timedelta, high: timedelta) -> Callable[[timedelta], timedelta]:
    """A duration range check whose message names the range (docs/configuration.md lists them)."""

    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise ValueError(
                f"{format_duration(value)} is out of range; write a duration from "
                f"{format_duration(low)} to {format_duration(high)}"
            )
        return value

    return check


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "use 1-64 lower-case letters, digits, '-', '_' or '.', starting and ending with a "
            "letter or digit (names become Vault paths and metric labels)"
        )
    return value


Name = Annotated[str, AfterValidator(_name)]
# Strict: TOML has real booleans and integers; `true` for a UID or "yes" for a flag is a mistake.
StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]

_MS = timedelta(milliseconds=1)
_S = timedelta(seconds=1)
_DAY = timedelta(days=1)
# The sane range of every duration (docs/configuration.md "Ranges"). A value outside is a typo
# (`"14w"` for `"14d"`) or would overflow date arithmetic; either way the file is refused. The
# lower bounds allow the seconds-long lifetimes of `rotator demo` and the simulator tests.
RenewBefore = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(_S, 80 * _DAY))
]
GracePeriod = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(0 * _S, 30 * _DAY))
]
ReconcileInterval = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(_S, _DAY))
]
Jitter = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_within(0 * _S, 7 * _DAY))]
RetryBudget = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(0 * _S, 30 * _DAY))
]
KeyLifetime = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(10 * _S, 365 * _DAY))
]
PasswordChangeGrace = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(_S, 30 * _DAY))
]
Timeout = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(100 * _MS, timedelta(minutes=5)))
]
NotifyInterval = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(0 * _S, 7 * _DAY))
]
# Sub-second lease times only make sense for tests on loopback; the defaults are 60s/40s/15s.
LeaseTime = Annotated[
    timedelta, BeforeValidator(_duration), AfterValidator(_within(100 * _MS, timedelta(hours=1)))
]
AckWait = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_within(_S, 30 * _DAY))]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


def _vault_path(value: str) -> str:
    cleaned = value.strip("/")
    if not cleaned or "//" in cleaned or ".." in cleaned.split("/"):
        raise ValueError('write a Vault path relative to the KV mount, like "rotator/keys/bot1"')
    return cleaned


VaultPath = Annotated[str, AfterValidator(_vault_path)]


class BybitConfig(_Model):
    base_url: str | None = None
    """Full base URL; overrides `testnet`. Default https://api.bybit.com (testnet: api-testnet)."""
    testnet: StrictBool = False
    recv_window_ms: StrictInt = Field(default=5000, ge=100, le=60_000)
    timeout: Timeout = timedelta(seconds=10)
    max_retries: StrictInt = Field(default=4, ge=0, le=20)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+(:\d+)?/?$", value):
            raise ValueError(
                'write a scheme and host only, like "https://api.bybit.com" or '
                '"http://127.0.0.1:8080"'
            )
        return value.rstrip("/") if value else value

    @property
    def url(self) -> str:
        if self.base_url:
            return self.base_url
        return "https://api-testnet.bybit.com" if self.testnet else "https://api.bybit.com"


class VaultAuthConfig(_Model):
    method: Literal["token", "approle", "jwt"] = "token"
    token_file: Path | None = None
    token_env: str | None = "VAULT_TOKEN"  # noqa: S105 (the name of a variable, not a token)
    role_id: str | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    secret_id_env: str | None = None
    role: str | None = None
    jwt_file: Path | None = None
    mount_point: str | None = None
    """Auth mount: default `approle` for AppRole, `jwt` for JWT (use `kubernetes` for that auth)."""

    @model_validator(mode="after")
    def _complete(self) -> VaultAuthConfig:
        if self.method == "approle":
            if not (self.role_id or self.role_id_file):
                raise ValueError("AppRole needs role_id (not secret) or role_id_file")
            if not (self.secret_id_file or self.secret_id_env):
                raise ValueError(
                    "AppRole needs secret_id_file (e.g. a systemd credential: "
                    "/run/credentials/rotator.service/vault-secret-id) or secret_id_env"
                )
        if self.method == "jwt" and not (self.role and self.jwt_file):
            raise ValueError(
                "JWT auth needs role and jwt_file (in Kubernetes: "
                "/var/run/secrets/kubernetes.io/serviceaccount/token)"
            )
        return self


VAULT_ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "address": ("VAULT_ADDR",),
    "namespace": ("VAULT_NAMESPACE",),
    "ca_cert": ("VAULT_CACERT", "VAULT_CAPATH"),
}
"""[vault] option -> the variables of Vault's own CLI that give it when the file does not, first
found wins (VAULT_CACERT before VAULT_CAPATH, as Vault's CLI has it). The token's variable is
[vault.auth] token_env (default VAULT_TOKEN)."""


class VaultConfig(_Model):
    address: str = "http://127.0.0.1:8200"
    """Default: $VAULT_ADDR, else http://127.0.0.1:8200."""
    mount: str = "secret"
    """KV version 2 mount."""
    prefix: VaultPath = "rotator"
    """Every path the rotator writes by default lives under this folder of the mount."""
    namespace: str | None = None
    """Default: $VAULT_NAMESPACE, else none."""
    ca_cert: Path | None = None
    """Default: $VAULT_CACERT, else $VAULT_CAPATH, else the system's CAs."""
    timeout: Timeout = timedelta(seconds=10)
    auth: VaultAuthConfig = VaultAuthConfig()
    _from_env: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _environment(
        cls, data: object, handler: ModelWrapValidatorHandler[VaultConfig], info: ValidationInfo
    ) -> VaultConfig:
        """Fill what the file leaves out from Vault's standard variables: the file wins where it
        says something (as a command-line flag beats the environment in Vault's CLI). Only when
        the loader passes the environment (`parse`), so a config built in code never reads it."""
        context = info.context if isinstance(info.context, dict) else {}
        env = context.get("env")
        if not isinstance(data, dict) or not isinstance(env, Mapping):
            return handler(data)
        taken = {
            option: next(name for name in names if env.get(name))
            for option, names in VAULT_ENVIRONMENT.items()
            if option not in data and any(env.get(name) for name in names)
        }
        try:
            model = handler({**data, **{option: env[name] for option, name in taken.items()}})
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                option = error["loc"][0] if error["loc"] else None
                if isinstance(option, str) and option in taken:
                    reason = error["msg"].removeprefix("Value error, ")
                    raise ValueError(
                        f"${taken[option]} (the {option}, as [vault] sets none): {reason}; fix "
                        f"the variable or set {option} in the file"
                    ) from None
            raise
        model._from_env = taken  # noqa: SLF001 (its own private attribute, set once at load)
        return model

    def from_environment(self, option: str) -> str | None:
        """The variable `option`'s value came from, or None when the file (or the default) gave
        it: `rotator check` names it next to the address."""
        return self._from_env.get(option)

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str) -> str:
        cleaned = value.strip("/")
        if not cleaned or "//" in cleaned or ".." in cleaned.split("/") or cleaned != value.strip():
            raise ValueError('write the KV v2 mount\'s name, like "secret" or "kv"')
        return cleaned

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+(:\d+)?/?$", value):
            raise ValueError('write a scheme, host and port, like "https://vault.example:8200"')
        return value.rstrip("/")


class PolicyOverrides(_Model):
    renew_before: RenewBefore | None = None
    grace_period: GracePeriod | None = None
    jitter: Jitter | None = None


class PolicyConfig(_Model):
    renew_before: RenewBefore = timedelta(days=14)
    """Rotate this long before the key's expiry."""
    grace_period: GracePeriod = timedelta(hours=24)
    """Keep the old key alive this long after hand-off (never past its own expiry)."""
    reconcile_interval: ReconcileInterval = timedelta(minutes=10)
    jitter: Jitter = timedelta(hours=6)
    """Spread renewals of keys created together over up to this long (earlier, never later)."""
    retry_budget: RetryBudget = timedelta(days=2)
    """Time reserved for retries before the latest safe moment; less left than this escalates."""
    key_lifetime: KeyLifetime = timedelta(days=90)
    """Lifetime of an unbound key when Bybit reports no expiry for it."""
    password_change_grace: PasswordChangeGrace = timedelta(days=7)
    """Keys stop working this long after the account's password changes."""
    password_change_scope: PasswordChangeScope = PasswordChangeScope.ALL
    """Keys a password change forces to rotate: "all" (created before it) or "unbound" only."""
    on_drift: OnDrift = OnDrift.ROTATE
    """A live key whose permissions, IPs or readOnly differ from the config: "rotate" or "alert"."""

    def merged(self, overrides: PolicyOverrides | None) -> PolicyConfig:
        if overrides is None:
            return self
        changes = {k: v for k, v in overrides.model_dump().items() if v is not None}
        return self.model_copy(update=changes)


class AccountConfig(_Model):
    name: Name
    master_key_path: VaultPath | None = None
    """Vault path of the master key record {api_key, api_secret[, kind]}. Default
    `<prefix>/accounts/<name>/master`."""


class FileHook(_Model):
    type: Literal["file"]
    path: Path
    format: Literal["env", "json"] = "env"
    mode: Annotated[int, Strict(), Field(ge=0, le=0o777)] = 0o600
    owner: str | None = None
    group: str | None = None
    api_key_name: str = "BYBIT_API_KEY"
    api_secret_name: str = "BYBIT_API_SECRET"  # noqa: S105 (a variable name)

    @field_validator("mode")
    @classmethod
    def _private(cls, value: int) -> int:
        if value & 0o007:
            raise ValueError(
                "the file holds a secret: other users must get no access (use 0o600 or 0o640)"
            )
        return value


class CommandHook(_Model):
    type: Literal["command"]
    argv: Annotated[list[str], Field(min_length=1)]
    timeout: Timeout = timedelta(seconds=20)
    """Below leader_election.renew_deadline (with the key's other hooks): see Config checks."""

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0] or any("\0" in arg for arg in value):
            raise ValueError(
                "argv[0] names the program and no argument may hold a NUL byte, like "
                '["systemctl", "restart", "bot"]'
            )
        return value


def webhook_url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL, or None. The URL is never quoted: it may hold a token."""
    try:
        split = urlsplit(url)
        _ = split.hostname, split.port  # both raise ValueError on a broken host or port
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "is not a URL (check brackets, host and port)"
    if parsed.scheme not in ("http", "https"):
        return "needs the scheme http:// or https://"
    if not parsed.host or not split.hostname:
        return "has no host"
    return None


class WebhookHook(_Model):
    type: Literal["webhook"]
    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None
    timeout: Timeout = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookHook:
        if sum(x is not None for x in (self.url, self.url_env, self.url_file)) != 1:
            raise ValueError("give exactly one of url, url_env or url_file")
        if self.url is not None and (problem := webhook_url_problem(self.url)) is not None:
            raise ValueError(
                f'url {problem}; write it like "https://hooks.example/rotated" (a URL with a '
                "token belongs in url_file or url_env)"
            )
        return self


_FIELD_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
ConfigFileFormat = Literal["json", "yaml", "toml"]
CONFIG_FILE_SUFFIXES: dict[str, ConfigFileFormat] = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
}


def _field_path(value: str) -> str:
    if not _FIELD_PATH.match(value):
        raise ValueError(
            f"{value!r} is not a field path; write the keys from the top of the file joined by "
            '".", like "exchange.key" (letters, digits, "_" and "-" only)'
        )
    return value


FieldPath = Annotated[str, AfterValidator(_field_path)]


class ConfigFileHook(_Model):
    """Sets the key and secret inside a bot's own config file (rotator/adapters/bot_config.py)."""

    type: Literal["config_file"]
    path: Path
    format: ConfigFileFormat | None = None
    """Default: from the file name's suffix (.json, .yaml/.yml, .toml)."""
    api_key_field: FieldPath
    api_secret_field: FieldPath

    @model_validator(mode="after")
    def _check(self) -> ConfigFileHook:
        if not self.path.is_absolute():
            raise ValueError(
                f"path {str(self.path)!r} must be absolute, like /etc/mybot/config.json"
            )
        if self.format is None and self.path.suffix.lower() not in CONFIG_FILE_SUFFIXES:
            raise ValueError(
                f"cannot tell the format of {self.path.name!r} from its suffix; add "
                'format = "json", "yaml" or "toml"'
            )
        key, secret = self.api_key_field, self.api_secret_field
        if key == secret or key.startswith(secret + ".") or secret.startswith(key + "."):
            raise ValueError(
                "api_key_field and api_secret_field must name two different fields, neither "
                "inside the other"
            )
        return self

    @property
    def file_format(self) -> ConfigFileFormat:
        return self.format or CONFIG_FILE_SUFFIXES[self.path.suffix.lower()]


Hook = Annotated[FileHook | CommandHook | WebhookHook | ConfigFileHook, Field(discriminator="type")]


class AckConfig(_Model):
    """The bot confirms it runs on the new key before the old one is revoked."""

    mode: Literal["vault", "hook"]
    """vault: the bot writes the new key id to `<prefix>/ack/<name>` (field `api_key`); hook:
    the key's command hooks succeeding counts as the acknowledgement."""
    max_wait: AckWait = timedelta(hours=72)
    """After the grace period, wait at most this long for the ack, then revoke anyway (never
    past the old key's own expiry)."""


class _KeyShape(_Model):
    """What a key looks like and how it is handed over: shared by `[[keys]]` and `[[key_sets]]`."""

    read_only: StrictBool = False
    ips: list[str] = []
    """Empty: the key is unbound and expires every 90 days (that is why this tool exists)."""
    permissions: dict[str, list[str]]
    policy: PolicyOverrides | None = None
    hooks: list[Hook] = []
    ack: AckConfig | None = None
    """Revoke the old key only once the bot acknowledged the new one (or `max_wait` passed)."""

    @model_validator(mode="after")
    def _ack_hook(self) -> _KeyShape:
        if (
            self.ack is not None
            and self.ack.mode == "hook"
            and not any(isinstance(h, CommandHook) for h in self.hooks)
        ):
            raise ValueError(
                'ack mode "hook" counts a command hook\'s success: add a hook ([[keys.hooks]] or '
                '[[key_sets.hooks]]) with type = "command", or use mode = "vault"'
            )
        return self

    @field_validator("ips")
    @classmethod
    def _ips(cls, value: list[str]) -> list[str]:
        if value == ["*"]:
            return []
        if len(value) > MAX_IPS_PER_KEY:
            raise ValueError(
                f"{len(value)} IPs given; Bybit binds at most {MAX_IPS_PER_KEY} to one key"
            )
        for ip in value:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise ValueError(
                    f'{ip!r} is not an IP address; write addresses like "203.0.113.7", or '
                    "leave ips empty for an unbound key"
                ) from None
        if len(set(value)) != len(value):
            raise ValueError("an IP is listed twice")
        return value

    @field_validator("permissions")
    @classmethod
    def _permissions(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not any(value.values()):
            raise ValueError(
                'give at least one permission, e.g. { ContractTrade = ["Order", "Position"] }'
            )
        for group, values in value.items():
            allowed = SUB_KEY_PERMISSIONS.get(group)
            if allowed is None:
                raise ValueError(
                    f"unknown permission group {group!r}; sub-account keys take "
                    + ", ".join(sorted(SUB_KEY_PERMISSIONS))
                )
            for item in values:
                if item not in allowed:
                    raise ValueError(
                        f"unknown permission {group}.{item!r}; {group} takes "
                        + ", ".join(repr(a) for a in sorted(allowed))
                    )
        return value

    @property
    def normalized_permissions(self) -> Permissions:
        return normalize_permissions(self.permissions)


SubUid = Annotated[int, Strict(), Field(gt=0, lt=2**63)]


class KeyConfig(_KeyShape):
    name: Name
    account: Name
    sub_uid: SubUid
    vault_path: VaultPath | None = None
    """Where consumers read the key. Default `<prefix>/keys/<name>`."""
    _key_set: str | None = PrivateAttr(default=None)

    @property
    def key_set(self) -> str | None:
        """The `[[key_sets]]` entry this key was expanded from (None: a `[[keys]]` table)."""
        return self._key_set

    def spec(self) -> KeySpec:
        return KeySpec(
            sub_uid=self.sub_uid,
            read_only=self.read_only,
            permissions=self.normalized_permissions,
            ips=tuple(self.ips),
        )


SUB_UID = "{sub_uid}"
"""The placeholder of a key set's templates."""
_SAMPLE_UID = 1_000_000_001  # checks an "all" set's templates at load, before Bybit is asked


def _member_match(value: str) -> str:
    if not value or len(value) > 64 or any(c.isspace() for c in value):
        raise ValueError(
            'write a sub UID ("2001") or a glob on the sub-account\'s username ("bot*"), '
            "without spaces, at most 64 characters"
        )
    return value


SubMemberMatch = Annotated[str, AfterValidator(_member_match)]
# A list of sub UIDs, or "all"; the branch is chosen by the value's type, so an error names
# only what is wrong with the form that was written.
SubUids = Annotated[
    Annotated[list[SubUid], Field(min_length=1, max_length=MAX_SET_SIZE), Tag("list")]
    | Annotated[Literal["all"], Tag("all")],
    Discriminator(lambda value: "all" if isinstance(value, str) else "list"),
]


def _template(value: str) -> str:
    if (
        SUB_UID not in value
        or "{" in value.replace(SUB_UID, "")
        or "}" in value.replace(SUB_UID, "")
    ):
        raise ValueError(
            f"write {SUB_UID} where each key's sub UID goes (the only placeholder), "
            'like "bot-{sub_uid}"'
        )
    return value


class KeySetConfig(_KeyShape):
    """Many keys of one shape: one per sub UID, named by a template."""

    name: Name
    """The set's own name (logs, `rotator plan`)."""
    name_template: Annotated[str, AfterValidator(_template)]
    """Each key's name, with `{sub_uid}` replaced: it must expand to a valid, unique name."""
    account: Name
    sub_uids: SubUids
    """The sub UIDs, or "all": every sub-account of the master as Bybit lists it, joined at each
    full reconcile (filtered by `include` / `exclude`)."""
    include: list[SubMemberMatch] = []
    """With "all": only these (a sub UID, or a glob on the sub-account's username)."""
    exclude: list[SubMemberMatch] = []
    """With "all": never these (same forms)."""
    vault_path: Annotated[str, AfterValidator(_template)] | None = None
    """Where consumers read each key, with `{sub_uid}`. Default `<prefix>/keys/<name>`."""

    @field_validator("sub_uids")
    @classmethod
    def _distinct(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, str):
            return value
        seen: set[int] = set()
        for uid in value:
            if uid in seen:
                raise ValueError(f"sub UID {uid} is listed twice; list each sub UID once")
            seen.add(uid)
        return value

    @model_validator(mode="after")
    def _filters(self) -> KeySetConfig:
        if self.sub_uids != "all" and (self.include or self.exclude):
            raise ValueError(
                'include and exclude filter sub_uids = "all"; with a list of sub UIDs, list '
                "only the ones you want"
            )
        return self

    @property
    def discovers(self) -> bool:
        """Its members come from Bybit's list of sub-accounts, not from the file."""
        return self.sub_uids == "all"

    def selects(self, uid: int, username: str) -> bool:
        """Whether a sub-account Bybit lists belongs to this "all" set."""

        def hit(pattern: str) -> bool:
            return (
                pattern == str(uid) if pattern.isdigit() else fnmatch.fnmatchcase(username, pattern)
            )

        if self.include and not any(hit(p) for p in self.include):
            return False
        return not any(hit(p) for p in self.exclude)

    def uid_of(self, key_name: str) -> int | None:
        """The sub UID a key name of this set was made for (None: not one of its names)."""
        head, _, tail = self.name_template.partition(SUB_UID)
        if not key_name.startswith(head) or not key_name.endswith(tail):
            return None
        middle = key_name[len(head) : len(key_name) - len(tail) if tail else None]
        return int(middle) if middle.isdigit() else None

    def expand(self, discovered: Sequence[int] = ()) -> list[KeyConfig]:
        """One key per sub UID, in the order listed (for "all": those `discovered`, and one
        sample UID checked and dropped, so a broken template fails at load); `{sub_uid}`
        replaced in the name, the vault path and every text of the hooks. Raises `_CrossError`
        located in this set."""
        shape = self.model_dump(
            include=set(_KeyShape.model_fields), exclude_none=True, round_trip=True
        )
        uids = list(discovered) if self.discovers else list(self.sub_uids)
        if self.discovers:
            uids.append(_SAMPLE_UID)
        out = []
        for uid in uids:
            raw = {
                **shape,
                "hooks": _fill(shape.get("hooks", []), str(uid)),
                "name": self.name_template.replace(SUB_UID, str(uid)),
                "account": self.account,
                "sub_uid": uid,
            }
            if self.vault_path is not None:
                raw["vault_path"] = self.vault_path.replace(SUB_UID, str(uid))
            try:
                key = KeyConfig.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = tuple(
                    "name_template" if p == "name" else p
                    for p in err["loc"]
                    if p not in {"file", "command", "webhook", "config_file"}
                )
                message = str(err["msg"]).removeprefix("Value error, ")
                raise _CrossError(loc, f"for sub UID {uid} ({raw['name']}): {message}") from None
            key._key_set = self.name  # noqa: SLF001 (set once, before anyone sees the key)
            out.append(key)
        return out[:-1] if self.discovers else out


def _fill(value: object, uid: str) -> object:
    """`value` with `{sub_uid}` replaced by `uid` in every string (and path) inside it."""
    if isinstance(value, str):
        return value.replace(SUB_UID, uid)
    if isinstance(value, Path):
        return Path(str(value).replace(SUB_UID, uid))
    if isinstance(value, dict):
        return {k: _fill(v, uid) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, uid) for v in value]
    return value


class MetricsConfig(_Model):
    enabled: StrictBool = True
    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        try:
            parse_host_port(value)
        except ValueError:
            raise ValueError('write host:port, like "127.0.0.1:9464" or "0.0.0.0:9464"') from None
        return value


class NotifyChannel(_Model):
    type: Literal["slack", "discord", "telegram", "webhook"]
    name: str | None = None
    url_env: str | None = None
    url_file: Path | None = None
    bot_token_env: str | None = None
    bot_token_file: Path | None = None
    chat_id: str | None = None

    @model_validator(mode="after")
    def _source(self) -> NotifyChannel:
        if self.type == "telegram":
            if not (self.bot_token_env or self.bot_token_file) or not self.chat_id:
                raise ValueError("telegram needs chat_id and bot_token_file or bot_token_env")
        elif not (self.url_env or self.url_file):
            raise ValueError(
                f"{self.type} needs url_file or url_env (the webhook URL is a secret: it is "
                "never written in the config)"
            )
        return self


class NotifyConfig(_Model):
    channels: list[NotifyChannel] = []
    min_interval: NotifyInterval = timedelta(hours=1)
    """The same notification (kind + key) is sent at most once per this interval."""


class LeaderElectionConfig(_Model):
    """One actor per master account: a lease in Vault (KV v2 check-and-set), as cert-manager's
    leader election uses a Kubernetes Lease. See docs/rotation.md "Fencing"."""

    lease_duration: LeaseTime = timedelta(seconds=60)
    """A candidate takes over a lease whose record has not changed for this long."""
    renew_deadline: LeaseTime = timedelta(seconds=40)
    """The holder starts no side effect once its last successful renewal is older than this."""
    retry_period: LeaseTime = timedelta(seconds=15)
    """How often the holder renews, and how often a candidate looks at the lease."""
    identity: str | None = None
    """Who holds the lease, in logs and `rotator status`. Default host:pid:random (unique per
    process); the random part is always appended, so two processes never share an identity."""

    @model_validator(mode="after")
    def _order(self) -> LeaderElectionConfig:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "need retry_period < renew_deadline < lease_duration (defaults 15s, 40s, 60s): "
                "the holder must renew several times, and stop acting, before others take over"
            )
        if self.lease_duration > timedelta(hours=1):
            raise ValueError(
                "lease_duration above 1h would leave a dead holder's keys alone too long"
            )
        return self


def _reminder_days(value: list[int]) -> list[int]:
    if not value:
        raise ValueError("give at least one number of days, e.g. [14, 7, 1]")
    for days in value:
        if not 1 <= days <= 365:
            raise ValueError(f"{days} is not a number of days from 1 to 365")
    if len(set(value)) != len(value):
        raise ValueError("a number of days is listed twice")
    return sorted(value, reverse=True)


ReminderDays = Annotated[list[int], AfterValidator(_reminder_days)]
_KEY_FP = re.compile(r"^[0-9a-f]{10}$")


class RemindersConfig(_Model):
    days_before: ReminderDays = [14, 7, 1]
    """Remind this many days before a tracked key expires; each point once per expiry."""


class TrackedKeyConfig(_Model):
    """A key the service must not rotate but reminds about before it expires (reminders.py)."""

    name: Name
    account: Name
    kind: Literal["master", "sub_key", "key"]
    """master: the account's master key. sub_key: a sub-account key the master lists (made in the
    web UI, e.g. RSA), found by `key_fp`. key: any key whose own credentials are in Vault (an
    account with no master key on file), at `credentials_path`."""
    sub_uid: int | None = Field(default=None, gt=0)
    key_fp: str | None = None
    """`key_fp` of the key id: the first 10 hex digits of its SHA-256, as logs and orphans show."""
    credentials_path: VaultPath | None = None
    """kind = "key": the Vault record {api_key, api_secret[, kind]} of the key itself.
    Default `<prefix>/tracked/<name>`."""
    days_before: ReminderDays | None = None
    """Overrides [reminders] days_before for this key."""

    @model_validator(mode="after")
    def _kind_fields(self) -> TrackedKeyConfig:
        given = {
            f for f in ("sub_uid", "key_fp", "credentials_path") if getattr(self, f) is not None
        }
        wanted = {"master": set(), "sub_key": {"sub_uid", "key_fp"}, "key": set()}[self.kind]
        allowed = wanted | ({"credentials_path"} if self.kind == "key" else set())
        if missing := wanted - given:
            raise ValueError(f'kind = "{self.kind}" needs {" and ".join(sorted(missing))}')
        if extra := given - allowed:
            raise ValueError(f'kind = "{self.kind}" takes no {", ".join(sorted(extra))}')
        if self.key_fp is not None and not _KEY_FP.match(self.key_fp):
            raise ValueError(
                "key_fp is 10 lower-case hex digits: printf %s KEYID | sha256sum | cut -c1-10 "
                "(never the key id itself: the config holds nothing secret)"
            )
        return self


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(_Model):
    bybit: BybitConfig = BybitConfig()
    vault: VaultConfig = VaultConfig()
    policy: PolicyConfig = PolicyConfig()
    accounts: list[AccountConfig] = []
    keys: list[KeyConfig] = []
    """After loading: every managed key, the `[[keys]]` tables first, then each key set's."""
    key_sets: list[KeySetConfig] = []
    metrics: MetricsConfig = MetricsConfig()
    notify: NotifyConfig = NotifyConfig()
    logging: LoggingConfig = LoggingConfig()
    leader_election: LeaderElectionConfig = LeaderElectionConfig()
    reminders: RemindersConfig = RemindersConfig()
    tracked: list[TrackedKeyConfig] = []

    @model_validator(mode="before")
    @classmethod
    def _vault_table(cls, data: object) -> object:
        """A file without [vault] still gets its VAULT_* defaults: validate an empty table (a
        default instance would skip VaultConfig's validators)."""
        if isinstance(data, dict) and "vault" not in data:
            return {**data, "vault": {}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Config:
        _unique([a.name for a in self.accounts], "accounts", "account")
        _unique([s.name for s in self.key_sets], "key_sets", "key set")
        known = {a.name for a in self.accounts}
        context = info.context if isinstance(info.context, dict) else {}
        discovered: Mapping[str, Sequence[int]] = context.get("discovered", {})
        every, origin = self._expand_sets(known, discovered)
        names: dict[str, int] = {}
        paths: dict[str, int] = {}
        per_sub: dict[int, list[int]] = {}
        for i, key in enumerate(every):
            at, about = origin[i]
            if key.account not in known:
                raise _CrossError(
                    (*at, "account"),
                    f"names account {key.account!r}, which no [[accounts]] entry defines; "
                    f"known accounts: {', '.join(sorted(known)) or 'none'}",
                )
            if key.name in names:
                raise _CrossError(
                    (*at, "name_template" if about else "name"),
                    f"{about}key {key.name!r} is used twice "
                    f"({_describe_origin(origin[names[key.name]])} has it too); every key must be "
                    "unique",
                )
            names[key.name] = i
            policy = self.policy_for(key)
            if policy.renew_before >= policy.key_lifetime:
                raise _CrossError(
                    (*at, "policy", "renew_before"),
                    f"{about}renew_before ({format_duration(policy.renew_before)}) is not shorter "
                    f"than the key lifetime ({format_duration(policy.key_lifetime)}): the key "
                    "would rotate as soon as it is created; lower renew_before (default 14d)",
                )
            per_sub.setdefault(key.sub_uid, []).append(i)
            self._check_vault_path(at, about, key)
            self._check_hook_time(at, about, key)
            path = self.vault_path(key)
            if path in paths:
                raise _CrossError(
                    (*at, "vault_path"),
                    f"{about}vault_path {path!r} is used twice "
                    f"({_describe_origin(origin[paths[path]])} has it too); every vault_path must "
                    "be unique",
                )
            paths[path] = i
        self._check_tracked(known)
        if self.policy.renew_before >= self.policy.key_lifetime:
            raise _CrossError(
                ("policy", "renew_before"),
                "renew_before is not shorter than key_lifetime; lower renew_before (default 14d)",
            )
        for uid, members in per_sub.items():
            if len(members) > MAX_MANAGED_PER_SUB_UID:
                at, _ = origin[members[MAX_MANAGED_PER_SUB_UID]]
                raise _CrossError(
                    at if at[0] == "key_sets" else ("keys",),
                    f"sub UID {uid} has {len(members)} managed keys; rotating needs room for one "
                    f"new key each and Bybit allows {MAX_KEYS_PER_ACCOUNT}: manage at most "
                    f"{MAX_MANAGED_PER_SUB_UID} keys per sub UID (count [[keys]] and "
                    "[[key_sets]] together)",
                )
        object.__setattr__(self, "keys", every)  # every managed key, the sets expanded
        return self

    def with_discovered(self, found: Mapping[str, Sequence[int]]) -> Config:
        """This config with the members of its `sub_uids = "all"` sets: set name -> sub UIDs
        (as the daemon found them on Bybit), validated as strictly as a file."""
        data = self.model_dump(round_trip=True)
        data["keys"] = [k.model_dump(round_trip=True) for k in self.keys if k.key_set is None]
        data["vault"] = self.vault  # as loaded, with where its values came from
        try:
            return Config.model_validate(data, context={"discovered": dict(found)})
        except ValidationError as exc:
            raise ConfigError(
                _describe(exc, "", "the config with the sub-accounts found on Bybit")
            ) from None

    @property
    def discovering_sets(self) -> list[KeySetConfig]:
        return [s for s in self.key_sets if s.discovers]

    def _expand_sets(
        self, known: set[str], discovered: Mapping[str, Sequence[int]]
    ) -> tuple[list[KeyConfig], list[tuple[tuple[str | int, ...], str]]]:
        """Every key ([[keys]], then each set's), and where each comes from: the key path an
        error names and, for a set's key, a prefix saying which key of the set."""
        expanded: list[KeyConfig] = []
        origin: list[tuple[tuple[str | int, ...], str]] = [
            (("keys", i), "") for i in range(len(self.keys))
        ]
        for j, key_set in enumerate(self.key_sets):
            if key_set.account not in known:
                raise _CrossError(
                    ("key_sets", j, "account"),
                    f"names account {key_set.account!r}, which no [[accounts]] entry defines; "
                    f"known accounts: {', '.join(sorted(known)) or 'none'}",
                )
            try:
                keys = key_set.expand(discovered.get(key_set.name, ()))
            except _CrossError as exc:
                raise _CrossError(("key_sets", j, *exc.loc), str(exc)) from None
            expanded += keys
            origin += [(("key_sets", j), f"key {k.name!r} (sub UID {k.sub_uid}): ") for k in keys]
        return [*self.keys, *expanded], origin

    def _check_tracked(self, known: set[str]) -> None:
        _unique([t.name for t in self.tracked], "tracked", "tracked key")
        seen: set[tuple[str, int | None, str | None]] = set()
        for i, t in enumerate(self.tracked):
            if t.kind != "key" and t.account not in known:
                raise _CrossError(
                    ("tracked", i, "account"),
                    f"names account {t.account!r}, which no [[accounts]] entry defines; a "
                    f'{t.kind} is read through that account\'s master key (use kind = "key" '
                    "for an account with no master key on file)",
                )
            ident = (t.account, t.sub_uid, t.key_fp) if t.kind != "key" else None
            if ident is not None:
                if ident in seen:
                    raise _CrossError(
                        ("tracked", i, "name"), "tracks the same key as an entry before it"
                    )
                seen.add(ident)

    def _check_vault_path(self, at: tuple[str | int, ...], about: str, key: KeyConfig) -> None:
        """A consumer path inside the rotator's own folders, or on a master key record, would
        let one key's hand-off overwrite another key's state or an account's master key."""
        path = self.vault_path(key)
        prefix = self.vault.prefix
        for folder in ROTATOR_FOLDERS:
            own = f"{prefix}/{folder}"
            if path == own or path.startswith(own + "/"):
                raise _CrossError(
                    (*at, "vault_path"),
                    f"{about}{path!r} is inside {own}/, where the rotator keeps its own records; "
                    f'use a path of its own, like "{prefix}/keys/{key.name}" (the default)',
                )
        for account in self.accounts:
            if path == self.master_key_path(account):
                raise _CrossError(
                    (*at, "vault_path"),
                    f"{about}{path!r} is account {account.name}'s master key record; give the "
                    f'key a path of its own, like "{prefix}/keys/{key.name}" (the default)',
                )

    def _check_hook_time(self, at: tuple[str | int, ...], about: str, key: KeyConfig) -> None:
        """A hand-off runs while this process holds the account's lease: all of one key's hooks
        must be able to finish before the holder stops acting (renew_deadline)."""
        timed = [h for h in key.hooks if isinstance(h, CommandHook | WebhookHook)]
        total = sum((h.timeout for h in timed), timedelta())
        deadline = self.leader_election.renew_deadline
        if total >= deadline:
            hooks = ", ".join(
                f"hooks[{key.hooks.index(h)}] {h.type} {format_duration(h.timeout)}" for h in timed
            )
            raise _CrossError(
                (*at, "hooks"),
                f"{about}the hooks' timeouts add up to {format_duration(total)} ({hooks}), not "
                f"less than leader_election.renew_deadline ({format_duration(deadline)}): a slow "
                "hook would outlive the lease. Lower the hooks' timeout (defaults: command 20s, "
                "webhook 10s) or raise renew_deadline",
            )

    # ---- derived facts, one place for every default path
    def policy_for(self, key: KeyConfig) -> PolicyConfig:
        return self.policy.merged(key.policy)

    def vault_path(self, key: KeyConfig) -> str:
        return key.vault_path or f"{self.vault.prefix}/keys/{key.name}"

    def state_path(self, key: KeyConfig) -> str:
        return f"{self.vault.prefix}/state/{key.name}"

    def master_key_path(self, account: AccountConfig) -> str:
        return account.master_key_path or f"{self.vault.prefix}/accounts/{account.name}/master"

    def account_state_path(self, account: AccountConfig) -> str:
        return f"{self.vault.prefix}/accounts/{account.name}/state"

    def ack_path(self, key: KeyConfig) -> str:
        return f"{self.vault.prefix}/ack/{key.name}"

    def lease_path(self, account: AccountConfig) -> str:
        return f"{self.vault.prefix}/leases/{account.name}"

    def intent_path(self, account: AccountConfig) -> str:
        return f"{self.vault.prefix}/intents/{account.name}"

    def snapshot_path(self, account: AccountConfig) -> str:
        return f"{self.vault.prefix}/snapshots/{account.name}"

    def reminder_path(self, tracked: TrackedKeyConfig) -> str:
        return f"{self.vault.prefix}/reminders/{tracked.name}"

    def tracked_credentials_path(self, tracked: TrackedKeyConfig) -> str:
        return tracked.credentials_path or f"{self.vault.prefix}/tracked/{tracked.name}"

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)

    def key(self, name: str) -> KeyConfig:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)


class _CrossError(ValueError):
    """A cross-field problem, carrying the key path it belongs to."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _describe_origin(origin: tuple[tuple[str | int, ...], str]) -> str:
    at, about = origin
    where = _format_loc(at)
    return f"{where}, {about.removesuffix(': ')}" if about else where


def _unique(values: list[str], section: str, what: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _CrossError(
                (section, i, "name" if what != "vault_path" else what),
                f"{what} {value!r} is used twice; every {what} must be unique",
            )
        seen.add(value)


# ------------------------------------------------------------------------------- loading
def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """--config, else $ROTATOR_CONFIG, else /etc/rotator/rotator.toml."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load(path: str | os.PathLike[str] | None = None) -> Config:
    file = resolve_path(path)
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{file}: larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a few KiB: "
                "is this the right file?"
            )
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: no such file. Pass --config FILE or set {CONFIG_ENV}; "
            "config/rotator.example.toml shows every option"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    return parse(text, source=str(file))


def parse(text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """The config in `text`; any problem is a `ConfigError` naming the file, field and fix.

    `env` (default: this process's environment) fills the [vault] options the file leaves out
    from VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT / VAULT_CAPATH (VAULT_ENVIRONMENT)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES // 1024} KiB; is it a config?")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}. Fix the syntax at that spot") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # e.g. an integer longer than Python's 4300-digit limit, or arrays nested 3,000 deep
        raise _too_large(source, exc) from None
    try:
        _refuse_inline_secrets(raw, text, source)
        return Config.model_validate(raw, context={"env": os.environ if env is None else env})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, text, source)) from None
    except (RecursionError, OverflowError) as exc:
        raise _too_large(source, exc) from None


def _too_large(source: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"{source}: cannot read it as a config ({type(exc).__name__}: a value too large "
        "or nested too deep); keep values short and nesting shallow"
    )


def _refuse_inline_secrets(
    raw: object, text: str, source: str, loc: tuple[str | int, ...] = ()
) -> None:
    if isinstance(raw, dict):
        for key, value in raw.items():
            if is_secret_field(key):
                where = _format_loc((*loc, key))
                raise ConfigError(
                    f"{source}{_line_suffix(text, (*loc, key))}: {where}: secrets never live in "
                    f"the config file. Remove it and use {key}_file (a file, e.g. a systemd "
                    f"credential) or {key}_env (an environment variable) instead"
                )
            _refuse_inline_secrets(value, text, source, (*loc, key))
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            _refuse_inline_secrets(item, text, source, (*loc, i))


def _describe(exc: ValidationError, text: str, source: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        message = err["msg"]
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, _CrossError):
            loc, message = inner.loc, str(inner)
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        loc = tuple(
            p
            for p in loc
            if not (isinstance(p, str) and p in {"file", "command", "webhook", "config_file"})
        )
        if err["type"] == "extra_forbidden":
            message = f"unknown option {loc[-1]!r} (a typo?); " + _known_options(loc)
        elif err["type"] == "missing":
            message = f"required option {loc[-1]!r} is missing; add it"
        where = _format_loc(loc) or "(top level)"
        lines.append(f"{source}{_line_suffix(text, loc)}: {where}: {message}")
    return "\n".join(lines)


def _known_options(loc: tuple[str | int, ...]) -> str:
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return "see config/rotator.example.toml"
        model = _model_of(field.annotation)
    if model is None:
        return "see config/rotator.example.toml"
    return "known options here: " + ", ".join(sorted(model.model_fields))


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _line_suffix(text: str, loc: tuple[str | int, ...]) -> str:
    line = locate_line(text, loc)
    return f":{line}" if line else ""


def locate_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort 1-based line of a key path in TOML text (tomllib keeps no positions).

    Walks `[[keys]]` headers to the n-th array entry, then finds `name =` below it.
    """
    lines = text.splitlines()
    start = 0
    table = ""
    best: int | None = None
    i = 0
    parts = list(loc)
    while i < len(parts):
        part = parts[i]
        if isinstance(part, str) and i + 1 < len(parts) and isinstance(parts[i + 1], int):
            table = f"{table}.{part}" if table else part
            header = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
            count = -1
            found = None
            for n in range(start, len(lines)):
                if header.match(lines[n]):
                    count += 1
                    if count == parts[i + 1]:
                        found = n
                        break
            if found is None:
                return best
            start, best = found, found + 1
            i += 2
            continue
        if isinstance(part, str):
            key_re = re.compile(rf"^\s*{re.escape(part)}\s*=")
            header = re.compile(rf"^\s*\[\s*{re.escape(f'{table}.{part}' if table else part)}\s*\]")
            for n in range(start, len(lines)):
                if key_re.match(lines[n]) or header.match(lines[n]):
                    start, best = n, n + 1
                    break
            table = f"{table}.{part}" if table else part
        i += 1
    return best


# ------------------------------------------------------------------------------- to the core
def rotation_policy(policy: PolicyConfig) -> RotationPolicy:
    return RotationPolicy(
        renew_before=policy.renew_before,
        grace_period=policy.grace_period,
        jitter=policy.jitter,
        retry_budget=policy.retry_budget,
        key_lifetime=policy.key_lifetime,
        password_change_grace=policy.password_change_grace,
        password_change_scope=policy.password_change_scope,
        on_drift=policy.on_drift,
    )


def managed_accounts(cfg: Config) -> tuple[ManagedAccount, ...]:
    return tuple(
        ManagedAccount(
            name=a.name, master_path=cfg.master_key_path(a), state_path=cfg.account_state_path(a)
        )
        for a in cfg.accounts
    )


def describe_key_sets(cfg: Config) -> list[str]:
    """One line per `[[key_sets]]` entry: what it expanded to, and the per-sub-UID limit."""
    lines = []
    for key_set in cfg.key_sets:
        names = [k.name for k in cfg.keys if k.key_set == key_set.name]
        if key_set.discovers and not names:
            lines.append(
                f"key set {key_set.name}: every sub-account of account {key_set.account} that "
                "Bybit lists (include/exclude applied), joined at each full reconcile; none "
                f"yet; at most {MAX_MANAGED_PER_SUB_UID} managed keys per sub UID"
            )
            continue
        shown = ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]}, ... {names[-1]}"
        lines.append(
            f"key set {key_set.name}: {len(names)} key(s) of account {key_set.account} "
            f"({shown}); at most {MAX_MANAGED_PER_SUB_UID} managed keys per sub UID (Bybit "
            f"allows {MAX_KEYS_PER_ACCOUNT}, each rotation needs room for the new one)"
        )
    return lines


def managed_keys(cfg: Config) -> tuple[ManagedKey, ...]:
    return tuple(
        ManagedKey(
            name=k.name,
            account=k.account,
            spec=k.spec(),
            consumer_path=cfg.vault_path(k),
            state_path=cfg.state_path(k),
            policy=rotation_policy(cfg.policy_for(k)),
            ack=None
            if k.ack is None
            else AckPolicy(mode=AckMode(k.ack.mode), max_wait=k.ack.max_wait, path=cfg.ack_path(k)),
        )
        for k in cfg.keys
    )


def tracked_keys(cfg: Config) -> tuple[TrackedKey, ...]:
    accounts = {a.name: a for a in cfg.accounts}
    out = []
    for t in cfg.tracked:
        account = accounts.get(t.account)
        out.append(
            TrackedKey(
                name=t.name,
                account=t.account,
                kind=TrackedKind(t.kind),
                record_path=cfg.reminder_path(t),
                days_before=tuple(t.days_before or cfg.reminders.days_before),
                master_path=cfg.master_key_path(account) if account is not None else None,
                sub_uid=t.sub_uid,
                key_fp=t.key_fp,
                credentials_path=cfg.tracked_credentials_path(t) if t.kind == "key" else None,
            )
        )
    return tuple(out)


def lease_settings(cfg: Config) -> LeaseSettings:
    """`[leader_election]` as the lease (rotator/lease.py) takes it."""
    le = cfg.leader_election
    return LeaseSettings(
        lease_duration=le.lease_duration,
        renew_deadline=le.renew_deadline,
        retry_period=le.retry_period,
    )
