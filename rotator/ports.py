"""The protocols the core needs from the outside world. Adapters implement them; tests fake them.

Every method raises only exceptions from `rotator.errors`: adapters translate at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from rotator.model import CreatedKey, Credentials, ExchangeKey, KeySpec, SubMember


class Exchange(Protocol):
    """Bybit's V5 user endpoints, as the rotation engine uses them."""

    def create_sub_key(self, master: Credentials, spec: KeySpec, *, note: str) -> CreatedKey:
        """POST create-sub-api. Never retried blindly: a lost reply is `ExchangeOutcomeUnknown`."""
        ...

    def list_sub_keys(self, master: Credentials, sub_uid: int) -> tuple[ExchangeKey, ...]:
        """GET sub-apikeys for one sub UID, every page."""
        ...

    def query_key(self, creds: Credentials) -> ExchangeKey:
        """GET query-api signed by `creds`: describes that very key."""
        ...

    def delete_sub_key(self, master: Credentials, key_id: str) -> None:
        """POST delete-sub-api by the master with `apikey`; deleting an absent key is no error."""
        ...

    def list_sub_members(self, master: Credentials) -> tuple[SubMember, ...]:
        """Every sub UID of the master (query-sub-members, or submembers pages beyond 1,000)."""
        ...

    def server_time(self) -> datetime:
        """GET /v5/market/time."""
        ...


@dataclass(frozen=True, slots=True)
class Versioned:
    """One KV v2 version: its data and version number (the `cas` for the next write)."""

    data: dict[str, Any]
    version: int


class KeyStore(Protocol):
    """A versioned key-value store with check-and-set: Vault / OpenBao KV v2.

    Paths are relative to the configured mount. Data values are JSON-compatible.
    """

    def read(self, path: str) -> Versioned | None:
        """The latest live version, or None if the path has never been written (or is deleted)."""
        ...

    def read_version(self, path: str, version: int) -> Versioned | None:
        """A specific version, or None if absent, deleted or destroyed."""
        ...

    def write(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        """Write a new version iff the current version is `cas` (0 = only if absent).

        Returns the new version. Raises `StoreConflict` when another writer got there first.
        """
        ...

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        """Permanently destroy those versions' data (used to drop secrets no longer needed)."""
        ...

    def list_children(self, path: str) -> tuple[str, ...]:
        """Child names under a folder path (folders end with '/'); empty if none."""
        ...

    def ping(self) -> None:
        """Cheap readiness probe: reachable, unsealed, authenticated. Raises on failure."""
        ...


Fence = Callable[[], None]
"""Called right before each side effect: returns if this process still holds the right to act,
raises `LeaseLost` if not (the side effect must then not happen)."""


def no_fence() -> None:
    """The fence of a single actor with nobody to lose to (tests, one-shot tools)."""


class HandOff(Protocol):
    """Tells a key's consumers that a new key is in Vault (file, command, webhook hooks)."""

    def deliver(self, key_name: str, record: dict[str, Any], *, fence: Fence = no_fence) -> None:
        """Hand the consumer record over, calling `fence()` right before each hook runs.

        Raises `HandOffFailed` (temporary) when a hook fails; `LeaseLost` from `fence()` passes
        through unchanged (it is not a hook failure: another actor carries on).
        """
        ...


class NoHandOff:
    """Consumers read Vault themselves: nothing to do."""

    def deliver(self, key_name: str, record: dict[str, Any], *, fence: Fence = no_fence) -> None:
        del key_name, record, fence


class Authority(Protocol):
    """The right to act on one master account: the account's lease (daemon, CLI), or a sole
    actor's unconditional right (tests, single-process tools). See rotator/lease.py."""

    @property
    def token(self) -> int | None:
        """The fencing token while the right is held, else None. Grows at every change of
        holder; every state record remembers the highest token that wrote it."""
        ...

    def fence(self) -> None:
        """Raise LeaseLost unless the right is held (local check): before state writes."""
        ...

    def fence_strict(self) -> None:
        """fence(), proven against the store: before Bybit creates and deletes, consumer writes
        and hooks."""
        ...


class SoleActor:
    """An Authority that always holds, with token 0: for one process that is alone by design."""

    token = 0

    def fence(self) -> None:
        """Always holds."""

    def fence_strict(self) -> None:
        """Always holds."""
