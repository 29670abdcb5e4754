"""Records never show a secret or a full key id in their repr."""

from __future__ import annotations

from rotator.model import CreatedKey, Credentials, ExchangeKey, Secret


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
