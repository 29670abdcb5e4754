"""Claims: before a step's side effect, the replica records that it is about to cause it.

With leases the fencing token decides who may act; a claim is what a sole actor (token 0: tests,
records from before leases) respects instead, for CLAIM_TTL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rotator.engine.parts import Parts
from rotator.engine.records import token_ahead
from rotator.errors import LeaseLost
from rotator.model import ManagedKey
from rotator.state import KeyState, Rotation

CLAIM_TTL = timedelta(minutes=5)  # another replica's claim younger than this is left alone


def claim(
    parts: Parts, key: ManagedKey, state: KeyState, rot: Rotation, version: int
) -> tuple[KeyState, Rotation, int]:
    """Record that this replica is about to cause the current step's side effect."""
    claimed = rot.claimed(by=parts.owner, at=parts.clock.now())
    new_state = state.with_rotation(claimed)
    return new_state, claimed, parts.write_state(key, new_state, version)


def claimed_by_other(
    parts: Parts, key: ManagedKey, state: KeyState, rot: Rotation, now: datetime
) -> bool:
    """Whether another actor's claim on the current step must be respected.

    With leases, never: a record written under a newer token than ours fences *us* out
    (LeaseLost), and a claim under an older token belongs to an actor that has been fenced
    out. Only sole actors (token 0) fall back to the old rule: a claim younger than CLAIM_TTL is
    left alone.
    """
    token = parts.authority.token
    if token is None:
        raise LeaseLost("this process no longer holds the account's lease")
    if state.token > token:
        token_ahead(parts.authority, key, state.token, token)
    if token > 0:
        return False
    return (
        rot.claimed_by not in (None, parts.owner)
        and rot.claimed_at is not None
        and now - rot.claimed_at < CLAIM_TTL
    )
