"""Bybit's request authentication (ref §1): the string to sign, HMAC and RSA verification over the
raw bytes as received, and the recv_window rule."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from rotator.simulator.keys import SimKey


def string_to_sign(timestamp: str, api_key: str, recv_window: str, payload: bytes) -> bytes:
    """`timestamp + api_key + recv_window + payload`, where payload is the raw query string (GET)
    or the raw body (POST), byte for byte as received: never a re-serialisation."""
    return timestamp.encode() + api_key.encode() + recv_window.encode() + payload


def hmac_signature(secret: str, signed: bytes) -> str:
    """HMAC-SHA256 keyed with the UTF-8 secret, lowercase hex."""
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def load_rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    """Parse a PEM public key; ValueError if it is not an RSA public key."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")  # noqa: TRY004 -- a bad value; callers catch ValueError
    return key


def signature_matches(key: SimKey, signed: bytes, signature: str) -> bool:
    """HMAC keys: lowercase hex only. RSA keys: SHA256withRSA (PKCS#1 v1.5), standard base64."""
    if key.rsa_public_key is not None:
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            key.rsa_public_key.verify(raw, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True
    if key.secret is None:
        return False
    return hmac.compare_digest(hmac_signature(key.secret, signed), signature)


def timestamp_accepted(
    timestamp_ms: int, server_ms: int, recv_window_ms: int, future_tolerance_ms: int = 1000
) -> bool:
    """ref §1.3: `server - recv_window <= timestamp < server + 1000`."""
    return server_ms - recv_window_ms <= timestamp_ms < server_ms + future_tolerance_ms


def recv_window_message(timestamp: str, server_ms: int, recv_window: str) -> str:
    """The observed 10002 wording (ref §1.3)."""
    return (
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{recv_window}]"
    )


def sign_error_message(payload: bytes) -> str:
    """The 2026 10004 wording (ref §1.5): the timestamp/key/recv_window prefix is masked as `***`,
    as in the observed `origin_string[***{...body...}]`."""
    return (
        "Error sign, please check your signature generation algorithm: "
        f"origin_string[***{payload.decode('utf-8', errors='replace')}]"
    )
