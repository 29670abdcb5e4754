"""Adopt: take an existing key (e.g. made by hand in the web UI) under management."""

from __future__ import annotations

import structlog

from rotator.engine.parts import Parts
from rotator.engine.steps import consumer_record, verification_problems
from rotator.errors import PermanentError, VerificationFailed
from rotator.key_report import KeyReport, idle_report
from rotator.model import Credentials, ManagedKey, Secret, fingerprint
from rotator.state import KeyRef, PendingKey

log = structlog.get_logger(__name__)


def adopt(parts: Parts, key: ManagedKey, key_id: str, secret: Secret) -> KeyReport:
    """Make `key_id` the key's active key.

    The key must answer query-api signed with `secret`, belong to the configured sub UID and
    match the spec. It becomes the active key; the key managed before is kept as `previous`
    (bots may still use it), so it stays on Bybit until the next rotation replaces that
    record, and is then deleted as an orphan. Refused while a rotation is in flight.
    """
    state, version = parts.read_state(key)
    if state.rotation is not None:
        raise PermanentError(
            f"key {key.name} has rotation {state.rotation.id} in flight "
            f"({state.rotation.step.value}); let it finish (rotator status) and adopt after"
        )
    now = parts.clock.now()
    info = parts.exchange.query_key(Credentials(api_key=key_id, secret=secret))
    if info.key_id != key_id:
        raise VerificationFailed("Bybit describes a different key than the one given")
    problems = verification_problems(key.spec, info, key.policy, now)
    if problems:
        raise VerificationFailed(
            "the key does not match the config: "
            + "; ".join(problems)
            + " (fix the config or the key, then adopt again)"
        )
    pending = PendingKey(
        key_id=key_id, secret=secret, created_at=info.created_at or now, expires_at=info.expires_at
    )
    consumer = parts.store.read(key.consumer_path)
    parts.authority.fence_strict()
    consumer_version = parts.store.write(
        key.consumer_path,
        consumer_record(key, pending, "adopted"),
        cas=consumer.version if consumer else 0,
    )
    adopted = state.as_adopted(
        KeyRef(
            key_id=key_id,
            created_at=pending.created_at,
            expires_at=info.expires_at,
            consumer_version=consumer_version,
        )
    )
    parts.write_state(key, adopted, version)
    log.info(
        "key.adopted", key=key.name, key_fp=fingerprint(key_id), vault_version=consumer_version
    )
    return idle_report(key, adopted, info.expires_at, now)
