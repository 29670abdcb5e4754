"""Bybit V5 request signing, as a pure function and as an `httpx.Auth`.

The string to sign is `timestamp + api_key + recv_window + payload`, where `payload` is the exact
query string sent (GET, without the `?`) or the exact body bytes sent (POST). The auth flow signs
what the request really carries, so the signature can never drift from the bytes on the wire.

HMAC keys sign with HMAC-SHA256 keyed by the secret (lowercase hex); RSA keys sign with
SHA256withRSA, i.e. RSASSA-PKCS1-v1_5 over SHA-256 (standard base64), the secret being the PEM
private key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING

import httpx

from rotator.model import REDACTED, KeyKind

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from rotator.model import Credentials

HEADER_API_KEY = "X-BAPI-API-KEY"
HEADER_TIMESTAMP = "X-BAPI-TIMESTAMP"
HEADER_SIGN = "X-BAPI-SIGN"
HEADER_RECV_WINDOW = "X-BAPI-RECV-WINDOW"
HEADER_SIGN_TYPE = "X-BAPI-SIGN-TYPE"

MASKED_HEADERS = frozenset({HEADER_API_KEY.lower(), HEADER_SIGN.lower()})


class SigningError(ValueError):
    """The credentials cannot sign (e.g. the RSA secret is not a PEM private RSA key)."""


def string_to_sign(*, timestamp_ms: str, api_key: str, recv_window_ms: str, payload: str) -> str:
    return timestamp_ms + api_key + recv_window_ms + payload


def sign_hmac(secret: str, message: str) -> str:
    """HMAC-SHA256 of `message` keyed with `secret`, lowercase hex (64 chars)."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_rsa(private_key_pem: str, message: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5) of `message`, standard base64."""
    # Imported here: only RSA keys need cryptography (about 9 MB of RSS in every process).
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # The library's message never contains key material, but we do not even pass it on.
        raise SigningError("the RSA secret is not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningError("the RSA secret is not an RSA private key")
    signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def sign(creds: Credentials, *, timestamp_ms: str, recv_window_ms: str, payload: str) -> str:
    """The `X-BAPI-SIGN` value for one request signed by `creds`."""
    message = string_to_sign(
        timestamp_ms=timestamp_ms,
        api_key=creds.api_key,
        recv_window_ms=recv_window_ms,
        payload=payload,
    )
    if creds.kind is KeyKind.RSA:
        return sign_rsa(creds.secret.reveal(), message)
    return sign_hmac(creds.secret.reveal(), message)


class MaskedHeaders(httpx.Headers):
    """Headers whose repr masks the Bybit key id and signature, as httpx masks `authorization`."""

    def __repr__(self) -> str:
        shown = [(k, REDACTED if k.lower() in MASKED_HEADERS else v) for k, v in self.multi_items()]
        return f"{type(self).__name__}({shown!r})"


def request_payload(request: httpx.Request) -> str:
    """What Bybit signs for this request: the raw query string (GET) or the raw body (POST)."""
    if request.method == "GET":
        return request.url.query.decode("ascii")
    return request.content.decode("utf-8")


class BybitAuth(httpx.Auth):
    """Signs each request at send time; `timestamp_ms` is asked once per request (per attempt)."""

    def __init__(
        self, creds: Credentials, *, recv_window_ms: int, timestamp_ms: Callable[[], int]
    ) -> None:
        self._creds = creds
        self._recv_window = str(recv_window_ms)
        self._timestamp_ms = timestamp_ms

    def __repr__(self) -> str:
        return f"BybitAuth({self._creds!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(self._timestamp_ms())
        signature = sign(
            self._creds,
            timestamp_ms=timestamp,
            recv_window_ms=self._recv_window,
            payload=request_payload(request),
        )
        headers = MaskedHeaders(request.headers)
        headers[HEADER_API_KEY] = self._creds.api_key
        headers[HEADER_TIMESTAMP] = timestamp
        headers[HEADER_SIGN] = signature
        headers[HEADER_RECV_WINDOW] = self._recv_window
        headers[HEADER_SIGN_TYPE] = "2"
        request.headers = headers
        yield request
