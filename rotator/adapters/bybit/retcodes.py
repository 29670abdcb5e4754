"""Bybit replies → `rotator.errors`: one exception class per class of retCode / HTTP status.

| reply                                   | exception                 | retried in-process |
|-----------------------------------------|---------------------------|--------------------|
| retCode 10002                           | ExchangeClockSkew         | yes, after resync  |
| retCode 10006, HTTP 429                 | ExchangeRateLimited       | yes, after reset   |
| HTTP 403 ("access too frequent")        | ExchangeRateLimited 600 s | no (wait > cap)    |
| retCode 10000, 10016, HTTP 5xx          | ExchangeUnavailable       | yes (not create)   |
| retCode 10003/10004/10007/10010/33004   | ExchangeAuthFailed        | no                 |
| HTTP 401                                | ExchangeAuthFailed        | no                 |
| retCode 10005                           | ExchangePermissionDenied  | no                 |
| create + msg mentions "limit" & api key | KeyLimitReached           | no                 |
| 10001, any other retCode, other 4xx     | ExchangeRejected          | no                 |

Bybit's `retMsg` is kept, redacted: the 10004 message echoes the string-to-sign inside
`origin_string[...]` (it holds the key id), so that part is dropped, and any key id or known secret
found in the text is replaced.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rotator.errors import (
    ExchangeAuthFailed,
    ExchangeClockSkew,
    ExchangeError,
    ExchangePermissionDenied,
    ExchangeRateLimited,
    ExchangeRejected,
    ExchangeUnavailable,
    KeyLimitReached,
    RotatorError,
)
from rotator.model import REDACTED, SECRET_REGISTRY, fingerprint

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import timedelta

OK = 0
CLOCK_SKEW = 10002
RATE_LIMITED = 10006
UNAVAILABLE_CODES = frozenset({10000, 10016})
AUTH_FAILED_CODES = frozenset({10003, 10004, 10007, 10010, 33004})
PERMISSION_DENIED = 10005
INVALID_KEY = 10003

NOT_EXECUTED_CODES = frozenset({CLOCK_SKEW, RATE_LIMITED})
"""Replies that prove Bybit did not act on the request: safe to resend even a create."""

_ORIGIN_STRING = re.compile(r"origin_string\[.*\]", re.IGNORECASE | re.DOTALL)
_MAX_MSG_CHARS = 240


def redact_message(message: str, *, sensitive: Iterable[str] = ()) -> str:
    """Bybit's retMsg made safe for logs and exceptions.

    Drops the echoed string-to-sign, replaces each sensitive value (key ids) with its fingerprint,
    scrubs every secret this process knows, and caps the length.
    """
    text = _ORIGIN_STRING.sub(f"origin_string[{REDACTED}]", message)
    for value in sensitive:
        if value:
            text = text.replace(value, f"<key_fp={fingerprint(value)}>")
    text = SECRET_REGISTRY.scrub(text)
    if len(text) > _MAX_MSG_CHARS:
        text = text[:_MAX_MSG_CHARS] + "…"
    return text


def is_key_limit_message(message: str) -> bool:
    """Heuristic for "this sub account already holds the maximum number of API keys".

    Bybit's code for it is undocumented (UNCONFIRMED), so we read the message: it must mention a
    limit (or maximum) *and* an API key. "Too many visits!" (10006) and "exceeded the IP rate
    limit" (10018) do not match.
    """
    text = message.lower()
    mentions_limit = "limit" in text or "maximum" in text or "exceed" in text
    mentions_key = "api key" in text or "apikey" in text or "api_key" in text
    return mentions_limit and mentions_key


def error_for_ret_code(
    code: int,
    message: str,
    *,
    endpoint: str,
    key_fp: str,
    retry_after: timedelta | None = None,
    is_create: bool = False,
) -> RotatorError:
    """The exception for a non-zero retCode. `message` must already be redacted."""
    text = f"Bybit {endpoint} (key_fp={key_fp}): retCode {code}: {message}"
    cls: type[ExchangeError]
    if code == CLOCK_SKEW:
        cls = ExchangeClockSkew
    elif code == RATE_LIMITED:
        cls = ExchangeRateLimited
    elif code in UNAVAILABLE_CODES:
        cls = ExchangeUnavailable
    elif code in AUTH_FAILED_CODES:
        cls = ExchangeAuthFailed
    elif code == PERMISSION_DENIED:
        cls = ExchangePermissionDenied
    elif is_create and is_key_limit_message(message):
        return KeyLimitReached(text)
    else:
        cls = ExchangeRejected
    return cls(text, ret_code=code, ret_msg=message, http_status=200, retry_after=retry_after)


def error_for_http_status(
    status: int, *, endpoint: str, key_fp: str, retry_after: timedelta | None
) -> ExchangeError:
    """The exception for a non-200 reply (Bybit sends business errors with 200)."""
    text = f"Bybit {endpoint} (key_fp={key_fp}): HTTP {status}"
    if status == 429:
        return ExchangeRateLimited(
            f"{text} (rate limited)", http_status=status, retry_after=retry_after
        )
    if status == 403:
        return ExchangeRateLimited(
            f"{text} (IP rate limit breached or region blocked; Bybit lifts IP bans after 10 min)",
            http_status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return ExchangeUnavailable(text, http_status=status)
    if status == 401:
        return ExchangeAuthFailed(
            f"{text} (wrong key for this environment, or auth headers missing)",
            http_status=status,
        )
    return ExchangeRejected(text, http_status=status)
