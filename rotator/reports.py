"""Reports as Vault records: what the lease holder writes so that followers, `rotator status` and a
waiting CLI see the same truth without a Bybit sweep of their own.

- `snapshot`: `<prefix>/snapshots/<account>`, written by the account's lease holder after each
  full reconcile: every key's report and the account's, with when and by whom.
- `report_to_record` / `report_from_record`: one KeyReport or AccountReport as JSON data; the
  intents (rotator/intents.py) carry their outcomes in the same form.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import types
import typing
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self, TypeVar

from rotator.errors import StateCorrupt
from rotator.key_report import AccountReport, KeyReport

SNAPSHOT_SCHEMA = 2  # 2: the key reports as one compressed string (1: a list of objects)

R = TypeVar("R", KeyReport, AccountReport)


def report_to_record(report: KeyReport | AccountReport) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def report_from_record(cls: type[R], raw: object, what: str) -> R:
    """Rebuild a report; unknown fields are ignored (a newer writer), missing ones defaulted."""
    if not isinstance(raw, dict):
        raise StateCorrupt(f"{what}: expected an object")
    values: dict[str, Any] = {}
    for name, kinds in _field_kinds(cls):
        if name not in raw:
            continue
        try:
            values[name] = _convert(raw[name], kinds)
        except (TypeError, ValueError, OverflowError):
            what_type = type(raw[name]).__name__
            raise StateCorrupt(f"{what}.{name}: {what_type} is not usable") from None
    try:
        return cls(**values)
    except TypeError:
        raise StateCorrupt(f"{what}: required fields are missing") from None


def _convert(value: object, kinds: frozenset[object]) -> object:
    if value is None and type(None) in kinds:
        return None
    if datetime in kinds:
        return datetime.fromisoformat(str(value))
    if tuple in kinds:
        if not isinstance(value, list | tuple):
            raise TypeError(type(value).__name__)
        return tuple(str(v) for v in value)
    if bool in kinds:
        return bool(value)
    if int in kinds:
        return int(str(value))
    named = [k for k in kinds if isinstance(k, type) and issubclass(k, enum.Enum)]
    # A StrEnum field (a state, a reason): ValueError for a name this version does not know.
    return named[0](str(value)) if named else str(value)


_FIELD_KINDS: dict[type, tuple[tuple[str, frozenset[object]], ...]] = {}


def _field_kinds(cls: type) -> tuple[tuple[str, frozenset[object]], ...]:
    """Each field of a report class and the types it may hold: worked out once per class (a
    snapshot of 10,000 keys rebuilds 10,000 reports: 2.2 s with the type hints read each time,
    0.07 s with them kept)."""
    found = _FIELD_KINDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple((f.name, frozenset(_kinds(hints[f.name]))) for f in dataclasses.fields(cls))
        _FIELD_KINDS[cls] = found
    return found


def _kinds(hint: object) -> set[object]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        found: set[object] = set()
        for arg in typing.get_args(hint):
            found |= _kinds(arg)
        return found
    return {origin or hint}


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One account's last full reconcile, as its lease holder saw it."""

    account: AccountReport
    keys: tuple[KeyReport, ...]
    written_at: datetime
    holder: str
    token: int

    def to_record(self) -> dict[str, Any]:
        # One string, not an object per key: OpenBao refuses a request of more than a few
        # thousand JSON strings (100 keys already make that many), and 10,000 keys' reports as
        # JSON are ~6 MB (a raft entry holds 1 MiB); compressed they are ~1/15 of it.
        # Compressed 200 reports at a time: the JSON text of them all never exists at once
        # (10,000 keys: 18 MB at the peak when it did, 1 MB now).
        packer = zlib.compressobj(6)
        packed = [packer.compress(b"[")]
        for start in range(0, len(self.keys), 200):
            batch = [report_to_record(k) for k in self.keys[start : start + 200]]
            text = json.dumps(batch, separators=(",", ":"))[1:-1]
            packed.append(packer.compress(f"{',' if start else ''}{text}".encode()))
        packed += [packer.compress(b"]"), packer.flush()]
        return {
            "schema": SNAPSHOT_SCHEMA,
            "account": report_to_record(self.account),
            "keys_zlib_b64": base64.b64encode(b"".join(packed)).decode(),
            "written_at": self.written_at.isoformat(),
            "holder": self.holder,
            "token": self.token,
        }

    @classmethod
    def from_record(cls, raw: dict[str, Any], what: str) -> Self:
        keys = _snapshot_keys(raw)
        if keys is None:
            raise StateCorrupt(f"{what} is not a snapshot this version reads")
        try:
            written_at = datetime.fromisoformat(str(raw.get("written_at")))
            token = int(raw.get("token", 0))
        except (TypeError, ValueError, OverflowError):
            raise StateCorrupt(f"{what}: written_at or token is unusable") from None
        return cls(
            account=report_from_record(AccountReport, raw.get("account"), f"{what}.account"),
            keys=tuple(
                report_from_record(KeyReport, k, f"{what}.keys[{i}]") for i, k in enumerate(keys)
            ),
            written_at=written_at,
            holder=str(raw.get("holder", "")),
            token=token,
        )


def _snapshot_keys(raw: dict[str, Any]) -> list[Any] | None:
    """The key reports of a schema 2 (or 1) snapshot as JSON data; None if unreadable."""
    if raw.get("schema") == 1:
        keys = raw.get("keys")
        return keys if isinstance(keys, list) else None
    if raw.get("schema") != SNAPSHOT_SCHEMA:
        return None
    try:
        packed = base64.b64decode(str(raw.get("keys_zlib_b64", "")), validate=True)
        keys = json.loads(zlib.decompress(packed))
    except (ValueError, zlib.error):
        return None
    return keys if isinstance(keys, list) else None
