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

pydantic validates the file (strict: a string is no number, an integer no boolean); every problem
raises `ConfigError` naming the file and the field, e.g. `seed.toml: accounts[0].keys[1].uid: ...`.
The options model is built from `SimulatorOptions` itself, so a new option needs no change here.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from rotator.durations import parse_duration
from rotator.errors import ConfigError
from rotator.simulator.options import SimulatorOptions

_DEFAULTS = SimulatorOptions()


class _FieldError(ValueError):
    """A check across fields that blames one of them: reported at `<model>.<field>`."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        msg = 'write a duration like "90d"'
        raise ValueError(msg)  # noqa: TRY004 -- pydantic turns ValueError into a located error
    return parse_duration(value)


def _rate_limits(value: object) -> object:
    if not isinstance(value, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value.values()
    ):
        msg = "a table of path = positive integer"
        raise ValueError(msg)
    return {**_DEFAULTS.rate_limits, **value}


def _option_field(name: str, annotation: Any) -> tuple[Any, Any]:
    if annotation is timedelta:
        return Annotated[timedelta, BeforeValidator(_duration)], getattr(_DEFAULTS, name)
    if name == "rate_limits":
        return Annotated[dict[str, int], BeforeValidator(_rate_limits)], _DEFAULTS.rate_limits
    return annotation, getattr(_DEFAULTS, name)


_OPTION_FIELDS: dict[str, Any] = {
    name: _option_field(name, hint)
    for name, hint in typing.get_type_hints(SimulatorOptions).items()
    if name in {f.name for f in dataclasses.fields(SimulatorOptions)}
}
_OptionsModel = create_model(
    "SeedOptions", __config__=ConfigDict(extra="forbid", strict=True), **_OPTION_FIELDS
)
"""Every `SimulatorOptions` field, typed as the dataclass types it; durations as "90d" text."""


PositiveInt = Annotated[int, Field(gt=0)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _in_utc(when: datetime | None) -> datetime | None:
    return None if when is None else when.astimezone(UTC)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _secret_pair(
    secret: str | None, rsa: str | None, *, required: bool
) -> tuple[str | None, str | None]:
    if secret is not None and rsa is not None:
        raise _FieldError(None, "give api_secret or rsa_public_key, not both")
    if required and secret is None and rsa is None:
        raise _FieldError("api_secret", "required (or rsa_public_key, a PEM public key)")
    return secret, rsa


class SeedKey(_Table):
    """A key that already exists on an account (made earlier in the web UI)."""

    uid: PositiveInt
    api_key: NonEmpty | None = None
    """None: the simulator makes up an id (and an HMAC secret)."""
    api_secret: NonEmpty | None = Field(default=None, repr=False)
    rsa_public_key: NonEmpty | None = None
    ips: list[str] | None = None
    permissions: dict[str, list[str]] | None = None
    read_only: bool = False
    note: str = ""
    created_at: AwareDatetime | None = None
    """A TOML datetime with an offset, e.g. 2026-01-01T00:00:00Z; kept in UTC."""

    _utc = field_validator("created_at")(_in_utc)

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        _secret_pair(self.api_secret, self.rsa_public_key, required=self.api_key is not None)
        return self


class SeedAccount(_Table):
    """A master account, its master key and its sub-accounts."""

    uid: PositiveInt
    api_key: NonEmpty
    api_secret: NonEmpty | None = Field(default=None, repr=False)
    rsa_public_key: NonEmpty | None = None
    sub_uids: list[PositiveInt] = []
    ips: list[str] | None = None
    """None leaves the master key unbound: it then expires like any unbound key."""
    permissions: dict[str, list[str]] | None = None
    read_only: bool = False
    created_at: AwareDatetime | None = None
    username: str | None = None
    keys: list[SeedKey] = []

    _utc = field_validator("created_at")(_in_utc)

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        _secret_pair(self.api_secret, self.rsa_public_key, required=True)
        return self


class _SeedFile(_Table):
    options: object = None
    """Checked by `_OptionsModel` (built at run time, so not a field type here)."""
    accounts: Annotated[list[SeedAccount], Field(min_length=1)]


class Seed(BaseModel):
    """A loaded seed: the file it came from, the option overrides and the accounts."""

    model_config = ConfigDict(frozen=True)

    path: Path
    options: dict[str, Any]
    """`SimulatorOptions` overrides: only the options the file sets."""
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
    problems: list[str] = []
    try:
        parsed = _SeedFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(exc, path))
    try:
        raw_options = data.get("options", {})
        options = _OptionsModel.model_validate(raw_options).model_dump(exclude_unset=True)
    except ValidationError as exc:
        problems.extend(_describe(exc, path, under=("options",)))
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        SimulatorOptions(**options)
    except TypeError as exc:  # pragma: no cover -- the model mirrors the dataclass
        raise ConfigError(f"{path}: options: {exc}") from None
    return Seed(path=path, options=options, accounts=parsed.accounts)


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


def _describe(exc: ValidationError, path: Path, under: tuple[str, ...] = ()) -> list[str]:
    """One line per problem: `<file>: <field path>: <what is wrong>` (never the value itself,
    which may be a secret)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = (*under, *err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, _FieldError) and inner.field is not None:
            loc = (*loc, inner.field)
        if err["type"] == "extra_forbidden":
            message = _unknown(loc)
        elif err["type"] == "missing":
            message = "required"
        elif err["type"] == "timezone_aware":
            message = "a TOML datetime with offset, e.g. 2026-01-01T00:00:00Z"
        if loc == ("accounts",) and err["type"] in {"missing", "too_short"}:
            message = "at least one [[accounts]] table is required"
        lines.append(f"{path}: {_format_loc(loc) or '(top level)'}: {message}")
    return lines


def _unknown(loc: tuple[str | int, ...]) -> str:
    if loc[:1] == ("options",):
        return "unknown option (see docs/simulator.md)"
    model: type[BaseModel] = _SeedFile
    if "keys" in loc[:-1]:
        model = SeedKey
    elif "accounts" in loc[:-1]:
        model = SeedAccount
    return f"unknown field; known: {sorted(model.model_fields)}"


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


__all__ = ["Seed", "SeedAccount", "SeedKey", "apply_seed", "load_seed"]
