"""Signing: the reference's HMAC vectors, an RSA round-trip, and the exact bytes signed."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from rotator.adapters.bybit import BybitAuth, sign, sign_hmac, sign_rsa
from rotator.adapters.bybit.signing import MaskedHeaders, SigningError, string_to_sign
from rotator.model import Credentials, KeyKind, Secret

# ref §1.2, key=TESTKEY, secret=TESTSECRET, recv_window=5000
VECTORS = [
    (
        "1658384314791",
        "category=option&symbol=BTC-29JUL22-25000-C",
        "78d6ff096610435ed722777ee534bed6ee060cb946a2825bafe5e7b585108065",
    ),
    (
        "1658385579423",
        '{"category": "option"}',
        "a23824169b96ed954431f14395690320fda8ba0b69f92a9ae7ad94a2ec88939b",
    ),
    ("1658385579423", "", "48baf62c43586502828adedfb7189266f450ed4145d088c3586e36b384cfb9bd"),
]


@pytest.mark.parametrize(("timestamp", "payload", "expected"), VECTORS)
def test_hmac_matches_reference_vectors(timestamp, payload, expected):
    """HMAC-SHA256 over timestamp+key+recv_window+payload, lowercase hex, as in ref §1.2."""
    creds = Credentials(api_key="TESTKEY", secret=Secret("TESTSECRET"))
    assert sign(creds, timestamp_ms=timestamp, recv_window_ms="5000", payload=payload) == expected


def _rsa_pair() -> tuple[str, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


def test_rsa_signature_verifies_with_the_public_key():
    """SHA256withRSA (PKCS#1 v1.5), base64: the public key verifies it; a changed payload fails."""
    pem, public = _rsa_pair()
    creds = Credentials(api_key="RSAKEY", secret=Secret(pem), kind=KeyKind.RSA)
    signature = sign(creds, timestamp_ms="1658385579423", recv_window_ms="5000", payload="a=1")
    message = string_to_sign(
        timestamp_ms="1658385579423", api_key="RSAKEY", recv_window_ms="5000", payload="a=1"
    )
    raw = base64.b64decode(signature, validate=True)
    public.verify(raw, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(raw, (message + "x").encode(), padding.PKCS1v15(), hashes.SHA256())


def test_rsa_with_a_non_rsa_secret_raises_signing_error_without_the_secret():
    """A garbage PEM is a SigningError whose message does not echo the secret."""
    with pytest.raises(SigningError) as info:
        sign_rsa("not a pem at all, secretish", "x")
    assert "secretish" not in str(info.value)


def test_hmac_is_lowercase_hex():
    assert sign_hmac("s", "m") == sign_hmac("s", "m").lower()
    assert len(sign_hmac("s", "m")) == 64


def _signed(request: httpx.Request, creds: Credentials, timestamp: int = 1658385579423):
    auth = BybitAuth(creds, recv_window_ms=5000, timestamp_ms=lambda: timestamp)
    flow = auth.sync_auth_flow(request)
    return next(flow)


def test_auth_signs_the_exact_query_sent():
    """GET: the signature covers the query string exactly as it is on the wire."""
    creds = Credentials(api_key="TESTKEY", secret=Secret("TESTSECRET"))
    request = httpx.Request(
        "GET", "http://127.0.0.1/v5/x?category=option&symbol=BTC-29JUL22-25000-C"
    )
    signed = _signed(request, creds, 1658384314791)
    assert signed.headers["X-BAPI-SIGN"] == VECTORS[0][2]
    assert signed.headers["X-BAPI-API-KEY"] == "TESTKEY"
    assert signed.headers["X-BAPI-TIMESTAMP"] == "1658384314791"
    assert signed.headers["X-BAPI-RECV-WINDOW"] == "5000"
    assert signed.headers["X-BAPI-SIGN-TYPE"] == "2"


def test_auth_signs_the_exact_body_sent():
    """POST: the signature covers the raw body bytes, whitespace included."""
    creds = Credentials(api_key="TESTKEY", secret=Secret("TESTSECRET"))
    request = httpx.Request("POST", "http://127.0.0.1/v5/x", content=b'{"category": "option"}')
    assert _signed(request, creds).headers["X-BAPI-SIGN"] == VECTORS[1][2]


def test_auth_asks_for_a_fresh_timestamp_per_request():
    creds = Credentials(api_key="TESTKEY", secret=Secret("TESTSECRET"))
    stamps = iter([1, 2])
    auth = BybitAuth(creds, recv_window_ms=5000, timestamp_ms=lambda: next(stamps))
    first = next(auth.sync_auth_flow(httpx.Request("GET", "http://127.0.0.1/a")))
    second = next(auth.sync_auth_flow(httpx.Request("GET", "http://127.0.0.1/a")))
    assert (first.headers["X-BAPI-TIMESTAMP"], second.headers["X-BAPI-TIMESTAMP"]) == ("1", "2")


def test_headers_repr_masks_key_and_signature():
    """The signed request's headers repr hides X-BAPI-API-KEY and X-BAPI-SIGN."""
    creds = Credentials(api_key="TESTKEYVISIBLE", secret=Secret("TESTSECRET"))
    signed = _signed(httpx.Request("POST", "http://127.0.0.1/v5/x", content=b"{}"), creds)
    assert isinstance(signed.headers, MaskedHeaders)
    text = repr(signed.headers)
    assert "TESTKEYVISIBLE" not in text
    assert signed.headers["X-BAPI-SIGN"] not in text
    assert "1658385579423" in text  # the harmless headers stay visible
    assert "TESTKEYVISIBLE" not in repr(BybitAuth(creds, recv_window_ms=1, timestamp_ms=int))


def test_compact_json_body_is_what_gets_signed():
    """The body the client builds is compact JSON, and that very string is signed."""
    body = json.dumps({"apikey": "X"}, separators=(",", ":")).encode()
    creds = Credentials(api_key="TESTKEY", secret=Secret("TESTSECRET"))
    signed = _signed(httpx.Request("POST", "http://127.0.0.1/v5/x", content=body), creds)
    expected = sign(
        creds, timestamp_ms="1658385579423", recv_window_ms="5000", payload=body.decode()
    )
    assert signed.headers["X-BAPI-SIGN"] == expected
