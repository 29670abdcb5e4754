"""Every read and write of a key's state record: fenced by the lease, stamped with its token,
check-and-set on the version this engine read or wrote last (so never over another writer's)."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from rotator.errors import LeaseLost, StateCorrupt
from rotator.model import ManagedKey
from rotator.ports import Authority, KeyStore
from rotator.state import KeyState

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class StateRecords:
    """The last (state, version) this engine read or wrote per key name: a failure is recorded
    with check-and-set on it, so it can never overwrite another writer's record."""

    last: dict[str, tuple[KeyState, int]] = field(default_factory=dict)

    def read(self, store: KeyStore, key: ManagedKey) -> tuple[KeyState, int]:
        """The key's state record and its version (0: none yet)."""
        record = store.read(key.state_path)
        if record is None:
            self.last[key.name] = (KeyState(), 0)
            return KeyState(), 0
        try:
            state = KeyState.from_record(record.data, f"state record {key.state_path}")
        except StateCorrupt as exc:
            raise StateCorrupt(
                f"{exc.message}; fix the record or delete it (then `rotator adopt` the live key)"
            ) from None
        self.last[key.name] = (state, record.version)
        return state, record.version

    def write(
        self, store: KeyStore, authority: Authority, key: ManagedKey, state: KeyState, version: int
    ) -> int:
        """Write `state` over `version` (check-and-set); the new version."""
        authority.fence()
        token = authority.token or 0
        if state.token > token:
            token_ahead(authority, key, state.token, token)
        stamped = state.with_token(token)
        new_version = store.write(key.state_path, stamped.to_record(), cas=version)
        self.last[key.name] = (stamped, new_version)
        return new_version


def token_ahead(authority: Authority, key: ManagedKey, theirs: int, ours: int) -> None:
    """The record was written under a newer token than ours: normally another actor took the
    account over and we are stale (LeaseLost). Only if the lease in Vault still names us with
    our token (its history was reset by hand) do we go on, keeping the higher token. A sole
    actor (token 0) proves nothing, so it never acts on an account run under leases."""
    stale = LeaseLost(
        f"state record {key.state_path} was written under fencing token {theirs}, newer "
        f"than ours ({ours}): another actor holds the account"
    )
    if ours == 0:
        raise stale
    try:
        authority.fence_strict()
    except LeaseLost:
        raise stale from None
    log.warning(
        "state.token_ahead",
        state_token=theirs,
        lease_token=ours,
        action="the lease names this process: its history was reset; carrying on",
    )
