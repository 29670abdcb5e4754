"""Records the whole project shares: secrets, key specs and what Bybit reports about keys.

All datetimes are aware UTC. Records are frozen; transitions return new records.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.policy import RotationPolicy

REDACTED = "[redacted]"


_ANCHOR = 8
"""Length of the window a secret is looked up by (and the shortest value registered)."""
_ALNUM_RUN = re.compile(rf"[A-Za-z0-9]{{{_ANCHOR},}}")
RETAIN_RETIRED = 4096


class _SecretRegistry:
    """Every live secret value (and key id) of this process, so the log redactor can find it
    anywhere.

    This is the second guard behind `Secret`'s masked repr: a secret that escaped into a plain
    string (an exception message, a URL, a traceback) is still replaced before a log line is
    written. A key id is replaced by its fingerprint (`<key_fp=…>`), so a line still says which.

    Bounded by what is live: a value is registered with the object that holds it (a `Secret`,
    `Credentials`, `CreatedKey`); when the last such holder is garbage collected it retires, and
    only the `retain` (4,096) most recently retired values stay, so a plain copy that briefly
    outlives its holder (an exception message, a reply) is still masked.

    Matching does not grow with the number of secrets: each value is indexed by its first
    8-character run of letters and digits (its anchor). `scrub` slides an 8-character window over
    the line's letter-and-digit runs and looks each window up in that index, so the cost is linear
    in the line, not in the registry (a secret inside a line always shows its anchor there). Only
    values without such a run (rare: a short secret full of punctuation) are searched as
    substrings.
    """

    def __init__(self) -> None:
        self._replacement: dict[str, str] = {}
        self._holders: dict[str, int] = {}
        self._anchors: dict[str, dict[str, int]] = {}  # window -> {value: offset in value}
        self._unanchored: set[str] = set()
        self._retired: dict[str, None] = {}  # no holder left, oldest first
        self.retain = RETAIN_RETIRED
        """How many values without a holder stay redacted (a copy of a secret may outlive its
        `Secret` briefly: in an exception, a reply being logged); the oldest go first."""
        self._lock = threading.Lock()
        self.witness: set[str] | None = None
        """When a set, every value ever registered is added to it (tests search outputs for
        every secret they made); production leaves it None."""

    def add(self, value: str, owner: object = None) -> None:
        """Register a secret while `owner` lives (None: for the life of the process)."""
        self._register(value, REDACTED, owner)

    def add_key_id(self, key_id: str, owner: object = None) -> None:
        """A Bybit key id: never shown in full in a log line (its fingerprint is)."""
        self._register(key_id, f"<key_fp={fingerprint(key_id)}>", owner)

    def _register(self, value: str, replacement: str, owner: object) -> None:
        if len(value) < _ANCHOR:  # shorter strings would redact innocent words
            return
        with self._lock:
            if self.witness is not None:
                self.witness.add(value)
            self._retired.pop(value, None)
            if value not in self._replacement:
                self._replacement[value] = replacement
                anchor = _ALNUM_RUN.search(value)
                if anchor is None:
                    self._unanchored.add(value)
                else:
                    window = value[anchor.start() : anchor.start() + _ANCHOR]
                    self._anchors.setdefault(window, {})[value] = anchor.start()
            elif replacement == REDACTED:
                self._replacement[value] = REDACTED  # a secret outranks a key id
            held = self._holders.get(value)
            if owner is None:
                self._holders[value] = 0  # 0: kept for good
            elif held is None or held > 0:
                self._holders[value] = (held or 0) + 1
        if owner is not None:
            weakref.finalize(owner, self._release, value)

    def _release(self, value: str) -> None:
        """The holder of `value` is gone: one fewer; with none left the value retires."""
        with self._lock:
            held = self._holders.get(value)
            if not held:  # kept for good
                return
            if held > 1:
                self._holders[value] = held - 1
                return
            del self._holders[value]
            self._retired[value] = None
            while len(self._retired) > self.retain:
                oldest = next(iter(self._retired))
                del self._retired[oldest]
                self._forget(oldest)

    def _forget(self, value: str) -> None:
        del self._replacement[value]
        self._unanchored.discard(value)
        anchor = _ALNUM_RUN.search(value)
        if anchor is not None:
            window = value[anchor.start() : anchor.start() + _ANCHOR]
            found = self._anchors[window]
            del found[value]
            if not found:
                del self._anchors[window]

    def __len__(self) -> int:
        return len(self._replacement)

    def values(self) -> frozenset[str]:
        """The values registered now."""
        with self._lock:
            return frozenset(self._replacement)

    def scrub(self, text: str) -> str:
        found: set[str] = set()
        with self._lock:
            anchors = self._anchors
            if anchors:
                for run in _ALNUM_RUN.finditer(text):
                    start, end = run.span()
                    for i in range(start, end - _ANCHOR + 1):
                        candidates = anchors.get(text[i : i + _ANCHOR])
                        if candidates:
                            found.update(
                                v
                                for v, offset in candidates.items()
                                if i >= offset and text.startswith(v, i - offset)
                            )
            found.update(v for v in self._unanchored if v in text)
            replacements = [(v, self._replacement[v]) for v in found]
        for value, replacement in sorted(replacements, key=lambda item: -len(item[0])):
            text = text.replace(value, replacement)
        return text


SECRET_REGISTRY = _SecretRegistry()


class Secret:
    """A secret string whose repr, str and log form are masked. `reveal()` is the only way in."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        SECRET_REGISTRY.add(value, self)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __structlog__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(fingerprint(self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


def fingerprint(value: str) -> str:
    """A short, stable, non-reversible tag of a key id or secret, safe in logs: `key_fp`."""
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def short_key_id(key_id: str) -> str:
    """What a person sees of a key id in tables: enough to tell keys apart, not enough to use."""
    if len(key_id) <= 8:
        return key_id[:2] + "…"
    return key_id[:4] + "…" + key_id[-2:]


Permissions = tuple[tuple[str, tuple[str, ...]], ...]
"""Bybit's permissions object, normalised: sorted groups, sorted values, empty groups dropped."""


def normalize_permissions(raw: Mapping[str, Iterable[str]]) -> Permissions:
    groups = []
    for group, values in raw.items():
        vals = tuple(sorted(set(values)))
        if vals:
            groups.append((group, vals))
    return tuple(sorted(groups))


def permissions_as_dict(perms: Permissions) -> dict[str, list[str]]:
    return {group: list(values) for group, values in perms}


class KeyKind(enum.Enum):
    HMAC = "hmac"  # system-generated: Bybit returns the secret once
    RSA = "rsa"  # self-generated: we hold the private key, Bybit the public one


@dataclass(frozen=True, slots=True, kw_only=True, weakref_slot=True)
class Credentials:
    """What signs a request: an API key id and its secret (HMAC secret or RSA private key PEM)."""

    api_key: str  # Bybit's key id; never logged in full
    secret: Secret
    kind: KeyKind = KeyKind.HMAC

    def __post_init__(self) -> None:
        # the log redactor masks it wherever it shows, while these credentials live
        SECRET_REGISTRY.add_key_id(self.api_key, self)

    def __repr__(self) -> str:
        return f"Credentials(key_fp={fingerprint(self.api_key)}, kind={self.kind.value})"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySpec:
    """What a managed key must look like; the target of create and the yardstick of verify."""

    sub_uid: int
    read_only: bool
    permissions: Permissions
    ips: tuple[str, ...] = ()  # empty = unbound ("*"): the key expires after Bybit's lifetime

    @property
    def is_ip_bound(self) -> bool:
        return bool(self.ips) and self.ips != ("*",)


class ListedStatus(enum.Enum):
    """`status` in the sub-apikeys listing."""

    PERMANENT = 1
    EXPIRED = 2
    VALID = 3
    EXPIRING_SOON = 4
    UNKNOWN = 0  # a value Bybit has not documented: treated as "look at expiredAt"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeKey:
    """What Bybit reports about one key (sub-apikeys item or query-api result). No secret."""

    key_id: str  # Bybit's `apiKey`
    internal_id: str = ""  # Bybit's `id`
    note: str = ""
    read_only: bool = False
    permissions: Permissions = ()
    ips: tuple[str, ...] = ("*",)
    created_at: datetime | None = None
    expires_at: datetime | None = (
        None  # None: Bybit reports no expiry (IP-bound, no password change)
    )
    deadline_day: int | None = None
    status: ListedStatus = ListedStatus.UNKNOWN
    # query-api only:
    user_id: int | None = None
    is_master: bool | None = None
    parent_uid: int | None = None

    def __repr__(self) -> str:
        return (
            f"ExchangeKey(key_fp={fingerprint(self.key_id)}, note={self.note!r}, "
            f"expires_at={self.expires_at!r}, status={self.status.name})"
        )

    @property
    def is_ip_bound(self) -> bool:
        return bool(self.ips) and self.ips != ("*",)


@dataclass(frozen=True, slots=True, kw_only=True, weakref_slot=True)
class CreatedKey:
    """The reply to create-sub-api: the only moment the secret exists outside our store."""

    key_id: str
    internal_id: str
    note: str
    read_only: bool
    permissions: Permissions
    secret: Secret = field(repr=False)

    def __post_init__(self) -> None:
        SECRET_REGISTRY.add_key_id(self.key_id, self)

    def __repr__(self) -> str:
        return f"CreatedKey(key_fp={fingerprint(self.key_id)}, note={self.note!r})"


# ---------------------------------------------------------------- what the config manages
MAX_KEYS_PER_ACCOUNT = 20
"""Bybit's limit of API keys per (sub-)account; a rotation needs room for its new key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedAccount:
    """A master account the config names, and where its records live in Vault."""

    name: str
    master_path: str  # Vault record {api_key, api_secret[, kind]}
    state_path: str


class AckMode(enum.StrEnum):
    """What counts as the consumer acknowledging a new key."""

    VAULT = "vault"  # the bot writes the new key id to the key's ack record
    HOOK = "hook"  # the key's hand-off hooks succeeding counts


@dataclass(frozen=True, slots=True, kw_only=True)
class AckPolicy:
    """Revoke the old key only once the consumer acknowledged the new one (or max_wait ran out)."""

    mode: AckMode
    max_wait: timedelta  # after the grace period; never past the old key's expiry
    path: str  # the ack record: {"api_key": <the new key id>}


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedKey:
    """One key the config manages: its spec, where it lives in Vault, its policy."""

    name: str
    account: str
    spec: KeySpec
    consumer_path: str
    state_path: str
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    ack: AckPolicy | None = None  # revoke only once the consumer acknowledged the new key


@dataclass(frozen=True, slots=True, kw_only=True)
class SubMember:
    """One sub UID of a master account."""

    uid: int
    username: str = ""
    member_type: int = 1
    status: int = 1  # 1 normal, 2 login banned, 4 frozen
