"""Records never show a secret or a full key id in their repr."""

from __future__ import annotations

import gc
import uuid

import pytest
from rotator.model import (
    REDACTED,
    SECRET_REGISTRY,
    CreatedKey,
    Credentials,
    ExchangeKey,
    Secret,
    fingerprint,
)


def test_reprs_hide_secret_and_key_id():
    """repr/str of every record that carries a key id or secret masks them."""
    key_id, secret = "KEYID1234567890ABC", "SECRETVALUE-abcdefghijklmnopqrstuvw"
    records = [
        ExchangeKey(key_id=key_id),
        CreatedKey(
            key_id=key_id,
            internal_id="1",
            note="n",
            read_only=False,
            permissions=(),
            secret=Secret(secret),
        ),
        Credentials(api_key=key_id, secret=Secret(secret)),
        Secret(secret),
    ]
    for record in records:
        for text in (repr(record), str(record), f"{record}"):
            assert key_id not in text
            assert secret not in text


def test_secret_equality_and_reveal():
    """Secrets compare by value and reveal only on request."""
    assert Secret("abcdefgh1") == Secret("abcdefgh1")
    assert Secret("abcdefgh1") != Secret("abcdefgh2")
    assert Secret("abcdefgh1").reveal() == "abcdefgh1"


@pytest.fixture(name="no_retention")
def _no_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values without a holder are forgotten at once (production keeps the last 4,096)."""
    monkeypatch.setattr(SECRET_REGISTRY, "retain", 0)


def _gone(value: str) -> bool:
    gc.collect()
    return value not in SECRET_REGISTRY.values()


def test_registry_forgets_a_secret_with_its_last_holder(no_retention: None):
    """The redaction registry is bounded by what is live: a secret stays redacted while any
    `Secret` holding it lives, and is dropped with the last one."""
    value = "FORGET" + uuid.uuid4().hex
    first, second = Secret(value), Secret(value)
    assert SECRET_REGISTRY.scrub(f"x {value} y") == f"x {REDACTED} y"
    del first
    assert not _gone(value)
    assert SECRET_REGISTRY.scrub(value) == REDACTED
    del second
    assert _gone(value)
    assert SECRET_REGISTRY.scrub(value) == value


def test_registry_forgets_key_ids_with_their_credentials(no_retention: None):
    """A key id is masked while the credentials or created key naming it live."""
    key_id = "KID" + uuid.uuid4().hex.upper()
    creds = Credentials(api_key=key_id, secret=Secret("S" + uuid.uuid4().hex))
    assert SECRET_REGISTRY.scrub(key_id) == f"<key_fp={fingerprint(key_id)}>"
    del creds
    assert _gone(key_id)


def test_registry_keeps_values_added_without_holder(no_retention: None):
    """A value registered with no holder stays for the life of the process."""
    value = "KEPT" + uuid.uuid4().hex
    SECRET_REGISTRY.add(value)
    held = Secret(value)
    del held
    assert not _gone(value)
    SECRET_REGISTRY.add(value)
    assert SECRET_REGISTRY.scrub(value) == REDACTED


def test_registry_finds_secrets_inside_longer_words():
    """A key id glued to digits (a signing payload: timestamp + key + recv_window) is still
    found: lookup is by an 8-character window anywhere in the line's letter-digit runs."""
    key_id = "GLUE" + uuid.uuid4().hex.upper()[:14]
    created = CreatedKey(
        key_id=key_id,
        internal_id="1",
        note="n",
        read_only=False,
        permissions=(),
        secret=Secret("S" + uuid.uuid4().hex),
    )
    text = SECRET_REGISTRY.scrub(f"payload=1700000000000{key_id}5000category=linear")
    assert key_id not in text
    assert f"1700000000000<key_fp={fingerprint(key_id)}>5000" in text
    assert created.key_id == key_id


def test_registry_secret_outranks_key_id_and_longest_wins(no_retention: None):
    """A value known both as key id and as secret is redacted as a secret; two secrets sharing
    their first eight characters are both found, the longer replaced first."""
    stem = "SHARED" + uuid.uuid4().hex[:10]
    SECRET_REGISTRY.add_key_id(stem + "aa")
    short, long_ = Secret(stem + "aa"), Secret(stem + "aabbcc")
    line = SECRET_REGISTRY.scrub(f"{stem}aabbcc and {stem}aa")
    assert line == f"{REDACTED} and {REDACTED}"
    del short
    assert not _gone(stem + "aa")  # also registered for good, as a key id
    assert SECRET_REGISTRY.scrub(stem + "aabbcc") == REDACTED
    del long_
    assert _gone(stem + "aabbcc")
    assert SECRET_REGISTRY.scrub(stem + "aa") == REDACTED


def test_registry_searches_punctuation_secrets_as_substrings(no_retention: None):
    """A secret with no eight letters or digits in a row (no anchor) is still found, and
    forgotten with its holder."""
    value = "-+" + "/".join(uuid.uuid4().hex[:6] for _ in range(3))
    held = Secret(value)
    assert SECRET_REGISTRY.scrub(f"[{value}]") == f"[{REDACTED}]"
    del held
    assert _gone(value)
    assert SECRET_REGISTRY.scrub(value) == value


def test_registry_short_values_and_witness(no_retention: None):
    """Values under 8 characters are not registered (they would redact innocent words); the
    test-suite's witness remembers every registered value, forgotten or not."""
    assert SECRET_REGISTRY.witness is not None  # set by tests/conftest.py
    before = len(SECRET_REGISTRY)
    Secret("short")
    assert len(SECRET_REGISTRY) == before
    value = "WITNESS" + uuid.uuid4().hex
    Secret(value)
    assert _gone(value)
    assert value in SECRET_REGISTRY.witness
    saved, SECRET_REGISTRY.witness = SECRET_REGISTRY.witness, None
    try:
        Secret("NOWITNESS" + uuid.uuid4().hex)
    finally:
        SECRET_REGISTRY.witness = saved


def test_registry_retains_the_most_recently_retired(monkeypatch: pytest.MonkeyPatch):
    """A plain copy may briefly outlive its Secret (an exception quoting it): the last `retain`
    values without a holder stay redacted, the oldest go first."""
    monkeypatch.setattr(SECRET_REGISTRY, "retain", 0)
    Secret("FLUSH" + uuid.uuid4().hex)  # retires at once: the backlog is empty now
    monkeypatch.setattr(SECRET_REGISTRY, "retain", 2)
    values = ["RETIRE" + uuid.uuid4().hex for _ in range(3)]
    for value in values:
        Secret(value)  # no reference kept: retired at once
    gc.collect()
    assert values[0] not in SECRET_REGISTRY.values()
    assert SECRET_REGISTRY.scrub(" ".join(values)) == f"{values[0]} {REDACTED} {REDACTED}"
    again = Secret(values[1])  # held again: live, no longer retired
    monkeypatch.setattr(SECRET_REGISTRY, "retain", 0)
    Secret("FLUSH" + uuid.uuid4().hex)
    assert SECRET_REGISTRY.scrub(values[1]) == REDACTED
    assert values[2] not in SECRET_REGISTRY.values()
    assert again.reveal() == values[1]
