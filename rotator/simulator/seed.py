"""The simulator's seed file (TOML): accounts, pre-existing keys and options.

```toml
[options]                          # optional; any SimulatorOptions field (durations as "90d")
key_lifetime = "90d"

[[accounts]]
uid = 1000
api_key = "MASTERKEY0000000001"
api_secret = "MASTERSECRET00000000000000000000001"   # or: rsa_public_key = '''PEM'''
sub_uids = [2001, 2002]
ips = ["127.0.0.1"]                # optional: bind the master key (default: unbound)

[[accounts.keys]]                  # optional: keys that already exist (made in the web UI)
uid = 2001
api_key = "SUBKEY000000000001"
api_secret = "SUBSECRET0000000000000000000000001"
permissions = { ContractTrade = ["Order", "Position"] }
created_at = 2026-01-01T00:00:00Z
```

Every problem raises `ConfigError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rotator.durations import parse_duration
from rotator.errors import ConfigError
from rotator.simulator.options import SimulatorOptions

_ACCOUNT_FIELDS = {
    "uid",
    "api_key",
    "api_secret",
    "rsa_public_key",
    "sub_uids",
    "ips",
    "permissions",
    "read_only",
    "created_at",
    "username",
    "keys",
}
_KEY_FIELDS = {
    "uid",
    "api_key",
    "api_secret",
    "rsa_public_key",
    "ips",
    "permissions",
    "read_only",
    "note",
    "created_at",
}
_DURATION_OPTIONS = {"key_lifetime", "expiring_soon", "password_change_grace"}
_DEFAULTS = SimulatorOptions()


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedKey:
    uid: int
    api_key: str | None
    api_secret: str | None = field(repr=False)
    rsa_public_key: str | None
    ips: list[str] | None
    permissions: dict[str, list[str]] | None
    read_only: bool
    note: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedAccount:
    uid: int
    api_key: str
    api_secret: str | None = field(repr=False)
    rsa_public_key: str | None
    sub_uids: list[int]
    ips: list[str] | None
    permissions: dict[str, list[str]] | None
    read_only: bool
    created_at: datetime | None
    username: str | None
    keys: list[SeedKey]


@dataclass(frozen=True, slots=True, kw_only=True)
class Seed:
    path: Path
    options: dict[str, Any]  # SimulatorOptions overrides
    accounts: list[SeedAccount]

    def simulator_options(self, **overrides: Any) -> SimulatorOptions:
        return SimulatorOptions(**{**self.options, **overrides})


def load_seed(path: Path) -> Seed:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the seed file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = str(path)
    unknown = set(data) - {"accounts", "options"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level field(s) {sorted(unknown)}")
    options = _options(data.get("options", {}), where)
    raw_accounts = data.get("accounts")
    if not isinstance(raw_accounts, list) or not raw_accounts:
        raise ConfigError(f"{where}: accounts: at least one [[accounts]] table is required")
    accounts = [_account(raw, f"{where}: accounts[{i}]") for i, raw in enumerate(raw_accounts)]
    return Seed(path=path, options=options, accounts=accounts)


def apply_seed(seed: Seed, simulator: Any) -> None:
    """Add the seed's accounts and keys to a `Simulator`."""
    for index, account in enumerate(seed.accounts):
        where = f"{seed.path}: accounts[{index}]"
        try:
            simulator.add_account(
                account.uid,
                account.api_key,
                account.api_secret,
                rsa_public_key=account.rsa_public_key,
                sub_uids=account.sub_uids,
                ips=account.ips,
                permissions=account.permissions,
                read_only=account.read_only,
                created_at=account.created_at,
                username=account.username,
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for k, key in enumerate(account.keys):
            try:
                simulator.add_key(
                    key.uid,
                    api_key=key.api_key,
                    api_secret=key.api_secret,
                    rsa_public_key=key.rsa_public_key,
                    ips=key.ips,
                    permissions=key.permissions,
                    read_only=key.read_only,
                    note=key.note,
                    created_at=key.created_at,
                )
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where}.keys[{k}]: {exc}") from None


def _options(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: options must be a table")
    known = {f.name for f in dataclasses.fields(SimulatorOptions)}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        at = f"{where}: options.{name}"
        if name not in known:
            raise ConfigError(f"{at}: unknown option (see docs/simulator.md)")
        out[name] = _option(name, value, at)
    try:
        SimulatorOptions(**out)
    except TypeError as exc:
        raise ConfigError(f"{where}: options: {exc}") from None
    return out


def _option(name: str, value: object, at: str) -> Any:
    current = getattr(_DEFAULTS, name)
    if name in _DURATION_OPTIONS:
        if not isinstance(value, str):
            raise ConfigError(f'{at}: write a duration like "90d"')
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{at}: {exc}") from None
    if name == "rate_limits":
        if not isinstance(value, dict) or not all(_is_int(v) for v in value.values()):
            raise ConfigError(f"{at}: a table of path = positive integer")
        return {**current, **value}
    if current is None:  # int | None or str | None
        if not isinstance(value, int | str) or isinstance(value, bool):
            raise ConfigError(f"{at}: an integer or a string")
        return value
    if type(value) is not type(current) and not (isinstance(current, float) and type(value) is int):
        raise ConfigError(f"{at}: expected {type(current).__name__}, got {value!r}")
    return value


def _account(raw: object, where: str) -> SeedAccount:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _no_unknown(raw, _ACCOUNT_FIELDS, where)
    api_key = raw.get("api_key")
    if not isinstance(api_key, str) or not api_key:
        raise ConfigError(f"{where}.api_key: required, a non-empty string")
    secret, rsa = _secret(raw, where, required=True)
    sub_uids = raw.get("sub_uids", [])
    if not isinstance(sub_uids, list) or not all(_is_int(u) for u in sub_uids):
        raise ConfigError(f"{where}.sub_uids: a list of integer UIDs")
    keys_raw = raw.get("keys", [])
    if not isinstance(keys_raw, list):
        raise ConfigError(f"{where}.keys: an array of tables ([[accounts.keys]])")
    username = raw.get("username")
    if username is not None and not isinstance(username, str):
        raise ConfigError(f"{where}.username: a string")
    return SeedAccount(
        uid=_uid(raw, where),
        api_key=api_key,
        api_secret=secret,
        rsa_public_key=rsa,
        sub_uids=list(sub_uids),
        ips=_ips(raw, where),
        permissions=_perms(raw, where),
        read_only=_bool(raw, "read_only", where),
        created_at=_when(raw, where),
        username=username,
        keys=[_key(k, f"{where}.keys[{i}]") for i, k in enumerate(keys_raw)],
    )


def _key(raw: object, where: str) -> SeedKey:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    _no_unknown(raw, _KEY_FIELDS, where)
    api_key = raw.get("api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ConfigError(f"{where}.api_key: a non-empty string")
    secret, rsa = _secret(raw, where, required=api_key is not None)
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise ConfigError(f"{where}.note: a string")
    return SeedKey(
        uid=_uid(raw, where),
        api_key=api_key,
        api_secret=secret,
        rsa_public_key=rsa,
        ips=_ips(raw, where),
        permissions=_perms(raw, where),
        read_only=_bool(raw, "read_only", where),
        note=note,
        created_at=_when(raw, where),
    )


def _no_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _uid(raw: dict[str, Any], where: str) -> int:
    uid = raw.get("uid")
    if not _is_int(uid):
        raise ConfigError(f"{where}.uid: required, a positive integer")
    assert isinstance(uid, int)  # noqa: S101 -- narrowing for mypy; _is_int checked it
    return uid


def _secret(raw: dict[str, Any], where: str, *, required: bool) -> tuple[str | None, str | None]:
    secret, rsa = raw.get("api_secret"), raw.get("rsa_public_key")
    if secret is not None and rsa is not None:
        raise ConfigError(f"{where}: give api_secret or rsa_public_key, not both")
    if required and secret is None and rsa is None:
        raise ConfigError(f"{where}.api_secret: required (or rsa_public_key, a PEM public key)")
    for name, value in (("api_secret", secret), ("rsa_public_key", rsa)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}.{name}: a non-empty string")
    return secret, rsa


def _ips(raw: dict[str, Any], where: str) -> list[str] | None:
    ips = raw.get("ips")
    if ips is None:
        return None
    if not isinstance(ips, list) or not all(isinstance(i, str) for i in ips):
        raise ConfigError(f'{where}.ips: a list of addresses, e.g. ["127.0.0.1"]')
    return list(ips)


def _perms(raw: dict[str, Any], where: str) -> dict[str, list[str]] | None:
    perms = raw.get("permissions")
    if perms is None:
        return None
    if not isinstance(perms, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in perms.values()
    ):
        raise ConfigError(f'{where}.permissions: a table of group = ["Value", ...]')
    return {str(g): list(v) for g, v in perms.items()}


def _bool(raw: dict[str, Any], name: str, where: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name}: true or false")
    return value


def _when(raw: dict[str, Any], where: str) -> datetime | None:
    value = raw.get("created_at")
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(
            f"{where}.created_at: a TOML datetime with offset, e.g. 2026-01-01T00:00:00Z"
        )
    return value.astimezone(UTC)


__all__ = ["Seed", "apply_seed", "load_seed"]
