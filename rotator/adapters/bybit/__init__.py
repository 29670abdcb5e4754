"""The Bybit V5 client: signing, rate limiting, error mapping and JSON parsing for the
user/API-key endpoints. See docs/bybit-client.md."""

from rotator.adapters.bybit.client import BybitClient, RequestObservation
from rotator.adapters.bybit.ratelimit import ENDPOINT_LIMITS_PER_S, RateLimiter
from rotator.adapters.bybit.signing import BybitAuth, sign, sign_hmac, sign_rsa

__all__ = [
    "ENDPOINT_LIMITS_PER_S",
    "BybitAuth",
    "BybitClient",
    "RateLimiter",
    "RequestObservation",
    "sign",
    "sign_hmac",
    "sign_rsa",
]
