"""The one way the protocol deletes a key on Bybit: never a key a Vault record points at."""

from __future__ import annotations

import structlog

from rotator.engine.parts import AccountRun
from rotator.model import ManagedKey, fingerprint
from rotator.state import KeyRef, KeyState, PendingKey

log = structlog.get_logger(__name__)


def guarded_delete(
    run: AccountRun,
    key: ManagedKey,
    key_id: str,
    *,
    why: str,
    strict: bool = True,
    allow_previous: bool = False,
    allow_pending: bool = False,
) -> bool:
    """Delete `key_id` on Bybit unless a record still points at it. False: refused.

    Independent of every other fence: the consumer record and the state's active and previous
    keys (pending too) are re-read right before the delete, and a key any of them names is
    never deleted (revoke may delete the previous key, a failed verify its own pending).
    """
    parts = run.parts
    if strict:
        parts.authority.fence_strict()
    live: set[str] = set()
    consumer = parts.store.read(key.consumer_path)
    if consumer is not None and isinstance(consumer.data.get("api_key"), str):
        live.add(consumer.data["api_key"])
    record = parts.store.read(key.state_path)
    if record is not None:
        state = KeyState.from_record(record.data, f"state record {key.state_path}")
        refs: list[KeyRef | PendingKey | None] = [state.active]
        if not allow_previous:
            refs.append(state.previous)
        if not allow_pending and state.rotation is not None:
            refs.append(state.rotation.pending)
        live.update(ref.key_id for ref in refs if ref is not None)
    if key_id in live:
        log.critical(
            "delete.refused",
            key_fp=fingerprint(key_id),
            why=why,
            reason="a Vault record points at this key; it stays on Bybit",
        )
        return False
    try:
        parts.exchange.delete_sub_key(run.master, key_id)
    except BaseException:
        run.forget_listing(key.spec.sub_uid)  # deleted or not: list again when needed
        raise
    run.unlist(key.spec.sub_uid, key_id)
    return True
