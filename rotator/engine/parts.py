"""What one account's run acts through, and what it has learnt so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rotator.clock import Clock
from rotator.engine.records import StateRecords
from rotator.model import Credentials, ExchangeKey, ManagedAccount, ManagedKey
from rotator.orphans import referenced_key_ids
from rotator.ports import Authority, Exchange, HandOff, KeyStore
from rotator.progress import Observer, ignore
from rotator.state import AccountState, KeyState


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """The engine's collaborators for one account, as they are when a run (or a command) starts."""

    exchange: Exchange
    store: KeyStore
    clock: Clock
    handoff: HandOff
    authority: Authority  # the right to act on the account (its lease, or a sole actor)
    records: StateRecords
    owner: str  # this replica's name in claims
    sleep: Callable[[float], None]
    observer: Observer = ignore  # told of each milestone (rotator/progress.py); never raises

    def read_state(self, key: ManagedKey) -> tuple[KeyState, int]:
        """The key's state record and its version (0: none yet)."""
        return self.records.read(self.store, key)

    def write_state(self, key: ManagedKey, state: KeyState, version: int) -> int:
        """Write the key's state record over `version` (fenced, check-and-set); the new version."""
        return self.records.write(self.store, self.authority, key, state, version)

    def clock_offset(self) -> timedelta:
        """Bybit's clock minus ours, as the client last measured it (zero if it cannot say)."""
        offset = getattr(self.exchange, "clock_offset", None)
        return offset if isinstance(offset, timedelta) else timedelta(0)

    def bybit_now(self) -> datetime:
        """The host clock corrected by the measured offset: the clock `createdAt` is on."""
        return self.clock.now() + self.clock_offset()


@dataclass(slots=True, kw_only=True)
class AccountRun:
    """One account's run: shared by its keys, one thread at a time."""

    parts: Parts
    account: ManagedAccount
    master: Credentials
    account_state: AccountState
    listings: dict[int, tuple[ExchangeKey, ...]] = field(default_factory=dict)
    force: frozenset[str] = frozenset()
    known: set[str] = field(default_factory=set)  # key ids some state record refers to
    read_keys: set[str] = field(default_factory=set)  # keys whose state record was read this run
    key_signal: datetime | None = None  # a password change inferred from a managed key

    def listing(self, sub_uid: int, *, fresh: bool = False) -> tuple[ExchangeKey, ...]:
        """The sub UID's keys as Bybit lists them, fetched once per run: this run's own changes
        are applied to the cached copy (a delete removes its key, a verified key joins with what
        query-api said), and a change whose outcome is unknown drops the copy, so the next use
        lists again. The create step always lists afresh."""
        if fresh or sub_uid not in self.listings:
            self.listings[sub_uid] = self.parts.exchange.list_sub_keys(self.master, sub_uid)
        return self.listings[sub_uid]

    def unlist(self, sub_uid: int, key_id: str) -> None:
        """`key_id` was deleted on Bybit."""
        if sub_uid in self.listings:
            self.listings[sub_uid] = tuple(k for k in self.listings[sub_uid] if k.key_id != key_id)

    def relist(self, sub_uid: int, item: ExchangeKey) -> None:
        """`item` is what Bybit says of a key now (a verified new key joins the listing)."""
        if sub_uid in self.listings:
            others = tuple(k for k in self.listings[sub_uid] if k.key_id != item.key_id)
            self.listings[sub_uid] = (*others, item)

    def forget_listing(self, sub_uid: int) -> None:
        """A change whose outcome is unknown: list again when next needed."""
        self.listings.pop(sub_uid, None)

    def saw(self, key_name: str, state: KeyState) -> None:
        """The key's state record was read (or written) this run: the key ids it refers to are
        not orphans."""
        self.read_keys.add(key_name)
        self.known.update(referenced_key_ids([state]))
