"""AccountRuntime: what the daemon runs for one master account.

Each account has an engine of its own (the engine is thread-safe per account only), the lease
that fences its side effects, a lock so that its runs never overlap, and the Vault queue of what
operators asked for (`rotator rotate`, ...). A reload builds new records; the lease carries over.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from rotator.intents import IntentQueue
from rotator.lease import AccountLease
from rotator.rotation import Engine


@dataclass
class AccountRuntime:
    """One master account's engine, lease, lock and intent queue, and its run under way."""

    name: str
    engine: Engine
    keys: tuple[str, ...]  # the names of the keys it manages
    lease: AccountLease
    intents: IntentQueue
    snapshot_path: str  # where the holder writes its view for followers and `rotator status`
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy_since: float | None = None  # monotonic start of the run under way, if any
    held_since: datetime | None = None  # when this replica last acquired the lease


def account_of(accounts: Iterable[AccountRuntime], key: str) -> str | None:
    """The account that manages `key`, None if none does."""
    return next((a.name for a in accounts if key in a.keys), None)
