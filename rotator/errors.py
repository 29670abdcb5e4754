"""The exception tree. Every class says what happens next.

    RotatorError
    ├── ConfigError                     bad config or usage: exit 2, nothing was done
    ├── TemporaryError(retry_after)     retry next tick, or after `retry_after`
    │   ├── StoreConflict               a check-and-set lost a race: re-read, re-decide
    │   ├── StoreUnavailable            Vault sealed, 5xx, unreachable, malformed reply
    │   ├── ExchangeUnavailable         Bybit 5xx, 10000/10016, timeout, connection
    │   │   ├── ExchangeRateLimited     10006, HTTP 429, HTTP 403 "access too frequent"
    │   │   └── ExchangeProtocolError   a reply not as the reference says: not JSON, nested too
    │   │                               deep, wrong types, missing fields, numbers out of range
    │   ├── ExchangeClockSkew           10002: our clock and Bybit's disagree beyond recv_window
    │   ├── HandOffFailed               a hook failed: retried, the old key is kept
    │   ├── LeaseLost                   this process no longer holds the account's lease (or a
    │   │                               newer actor fenced it out): stop, start no side effect
    │   └── ExchangeOutcomeUnknown      a create may have committed but its reply was lost:
    │                                   never retried blindly (the note tag finds the key)
    └── PermanentError                  stop rotating this key, page a human
        ├── StoreDenied                 Vault 400/401/403: token or policy is wrong
        ├── ExchangeRejected            Bybit said no; a retry will not fix it
        │   ├── ExchangeAuthFailed      10003 unknown key, 10004 signature, 10010 IP, 33004 expired
        │   └── ExchangePermissionDenied 10005: the key lacks a permission
        ├── KeyLimitReached             the sub account already holds 20 keys
        ├── VerificationFailed          the new key does not match the spec
        └── StateCorrupt                a Vault record has an unknown shape: fix it by hand

Exchange errors carry Bybit's `ret_code`, `ret_msg` and the HTTP status. Messages never contain a
secret, a signature or a full key id: adapters build them from redacted parts only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import timedelta


class RotatorError(Exception):
    """Root of everything this project raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(RotatorError):
    """The config or the command line is wrong; the message names the file, field and fix."""


class TemporaryError(RotatorError):
    """Retry later: on the next tick, or after `retry_after` when the remote said so."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(RotatorError):
    """A retry will not help; a human must act."""


class StoreConflict(TemporaryError):
    """A check-and-set write lost to another writer."""


class StoreUnavailable(TemporaryError):
    """Vault could not be reached or answered with something we cannot use."""


class StoreDenied(PermanentError):
    """Vault refused: the token, its policy or the mount is wrong."""


class ExchangeError(RotatorError):
    """Mixin data for errors that come from Bybit."""

    def __init__(
        self,
        message: str,
        *,
        ret_code: int | None = None,
        ret_msg: str | None = None,
        http_status: int | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        RotatorError.__init__(self, message)
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.http_status = http_status
        self.retry_after = retry_after


class ExchangeUnavailable(ExchangeError, TemporaryError):
    """Bybit is down, slow, or sent a reply we cannot parse."""


class ExchangeRateLimited(ExchangeUnavailable):
    """Bybit's rate limit was hit; `retry_after` says when the window resets."""


class ExchangeProtocolError(ExchangeUnavailable):
    """Bybit answered, but not as its reference says (shape, types, ranges): retried like an
    outage; the message names the endpoint and the field, never a value."""


class ExchangeClockSkew(ExchangeError, TemporaryError):
    """10002: the request timestamp fell outside Bybit's recv_window rule."""


class ExchangeOutcomeUnknown(ExchangeError, TemporaryError):
    """A non-idempotent request may have taken effect, but no reply came back."""


class ExchangeRejected(ExchangeError, PermanentError):
    """Bybit refused the request for a reason a retry will not fix."""


class ExchangeAuthFailed(ExchangeRejected):
    """The key is unknown, deleted, expired, bound to other IPs, or the signature is wrong."""


class ExchangePermissionDenied(ExchangeRejected):
    """The key lacks the permission the endpoint needs, or is the wrong kind (sub vs master)."""


class KeyLimitReached(PermanentError):
    """Creating one more key would exceed Bybit's limit of 20 keys per account."""


class VerificationFailed(PermanentError):
    """The freshly created key does not match the spec (permissions, IPs, read-only, expiry)."""


class StateCorrupt(PermanentError):
    """A record in Vault does not have the shape this version writes: fix or remove it by hand."""


class HandOffFailed(TemporaryError):
    """A hand-off hook (file, command, webhook) failed; retried, and the old key is kept."""


class LeaseLost(TemporaryError):
    """This process may no longer act on the account: its lease lapsed, or a newer actor (higher
    fencing token) wrote the record. Nothing was done; the current holder carries on."""
