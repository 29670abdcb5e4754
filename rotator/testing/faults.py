"""Injected failures for the in-memory fakes: the next calls of an operation raise a given error.

Both fakes (`MemoryStore`, `MemoryExchange`) take their fault injection from here, so a test
says `fake.fail_next("write", StoreUnavailable(...), times=2)` the same way on either.
"""

from __future__ import annotations

import threading
from collections import deque

from rotator.errors import RotatorError


class Faults:
    """Per-operation queues of errors, raised one per call, oldest first."""

    def __init__(self, operations: tuple[str, ...]) -> None:
        self.operations = operations
        self._lock = threading.Lock()
        self._queued: dict[str, deque[RotatorError]] = {}

    def fail_next(self, operation: str, error: RotatorError, *, times: int = 1) -> None:
        """The next `times` calls of `operation` raise `error` (and do nothing else)."""
        if operation not in self.operations:
            raise ValueError(f"unknown operation {operation!r}; one of {self.operations}")
        with self._lock:
            self._queued.setdefault(operation, deque()).extend([error] * times)

    def clear(self) -> None:
        """Drop every failure still waiting."""
        with self._lock:
            self._queued.clear()

    def raise_next(self, operation: str) -> None:
        """Raise the failure queued for this call of `operation`, if any."""
        with self._lock:
            pending = self._queued.get(operation)
            error = pending.popleft() if pending else None
        if error is not None:
            raise error
