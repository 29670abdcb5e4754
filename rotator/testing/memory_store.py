"""`MemoryStore`: Vault / OpenBao KV v2 in a dict, with the semantics the engine relies on.

- Every write makes a new version (1, 2, ...); `cas` must equal the current version, counting
  versions that were deleted or destroyed (0 = only if the path was never written), else
  `StoreConflict`.
- `read` gives the latest version, or None when it was never written or the latest version is
  deleted or destroyed; `read_version` gives one version, None when absent, deleted or destroyed.
- `destroy_versions` drops those versions' data for good (unknown versions are ignored);
  `delete_latest` is KV v2's soft delete (the data stays, reads see nothing).
- `list_children("a/")` lists the names right below `a/`: leaves, and folders with a trailing
  "/", sorted; a path whose versions are all destroyed is still listed (its metadata remains).
- Data goes in and comes out as JSON (a tuple comes back a list), deep-copied both ways.

Failures are injected with `fail_next(operation, error)`; `operations` counts calls per operation.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rotator.errors import RotatorError, StoreConflict
from rotator.ports import Versioned
from rotator.testing.faults import Faults

OPERATIONS = ("read", "read_version", "write", "destroy", "list", "ping")


@dataclass(slots=True)
class _Version:
    data: dict[str, Any] | None  # None once destroyed
    deleted: bool = False


@dataclass(slots=True)
class _Entry:
    versions: dict[int, _Version] = field(default_factory=dict)

    @property
    def current(self) -> int:
        return max(self.versions, default=0)


class MemoryStore:
    """A `rotator.ports.KeyStore` in memory. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._faults = Faults(OPERATIONS)
        self.operations: Counter[str] = Counter()

    # ------------------------------------------------------------------ KeyStore
    def read(self, path: str) -> Versioned | None:
        with self._lock:
            self._enter("read")
            entry = self._entries.get(_clean(path))
            if entry is None or not entry.versions:
                return None
            return _visible(entry, entry.current)

    def read_version(self, path: str, version: int) -> Versioned | None:
        with self._lock:
            self._enter("read_version")
            entry = self._entries.get(_clean(path))
            return None if entry is None else _visible(entry, version)

    def write(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        with self._lock:
            self._enter("write")
            entry = self._entries.setdefault(_clean(path), _Entry())
            if cas != entry.current:
                raise StoreConflict("Vault write: another writer changed the record")
            version = entry.current + 1
            entry.versions[version] = _Version(data=_json_copy(data))
            return version

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        if not versions:
            return
        with self._lock:
            self._enter("destroy")
            entry = self._entries.get(_clean(path))
            for number in versions:
                if entry is not None and number in entry.versions:
                    entry.versions[number].data = None

    def list_children(self, path: str) -> tuple[str, ...]:
        with self._lock:
            self._enter("list")
            folder = _clean(path) + "/" if _clean(path) else ""
            names: set[str] = set()
            for stored in self._entries:
                if stored.startswith(folder) and stored != folder.rstrip("/"):
                    rest = stored[len(folder) :]
                    head, slash, _ = rest.partition("/")
                    names.add(head + slash)
            return tuple(sorted(names))

    def ping(self) -> None:
        with self._lock:
            self._enter("ping")

    # ------------------------------------------------------------------ for tests
    def delete_latest(self, path: str) -> None:
        """KV v2's soft delete of the latest version: reads see nothing, `cas` still counts it."""
        with self._lock:
            entry = self._entries.get(_clean(path))
            if entry is not None and entry.versions:
                entry.versions[entry.current].deleted = True

    def fail_next(self, operation: str, error: RotatorError, *, times: int = 1) -> None:
        """The next `times` calls of `operation` (one of OPERATIONS) raise `error` instead."""
        self._faults.fail_next(operation, error, times=times)

    def clear_failures(self) -> None:
        """Drop every failure still waiting (Vault answers again)."""
        with self._lock:
            self._faults.clear()

    def paths(self) -> tuple[str, ...]:
        """Every path ever written, sorted."""
        with self._lock:
            return tuple(sorted(self._entries))

    def _enter(self, operation: str) -> None:
        self.operations[operation] += 1
        self._faults.raise_next(operation)


def _clean(path: str) -> str:
    return path.strip("/")


def _visible(entry: _Entry, version: int) -> Versioned | None:
    stored = entry.versions.get(version)
    if stored is None or stored.deleted or stored.data is None:
        return None
    return Versioned(data=_json_copy(stored.data), version=version)


def _json_copy(data: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(data))
    return copied


__all__ = ["OPERATIONS", "MemoryStore"]
