"""The names of fields that hold a secret, wherever a field is named: a log event's keys, the
headers and arguments a log line may carry, a key of the config file.

One list with one meaning: a field so named holds a secret. So the log redactor (`rotator.logs`)
prints `[redacted]` for its value, whatever the value is, and the config loader
(`rotator.config`) refuses it anywhere in the file: the secret comes from `NAME_file` (a file,
such as a systemd credential) or `NAME_env` (an environment variable) instead.
"""

from __future__ import annotations

SECRET_FIELDS = frozenset(
    {
        # secrets by name, as our records, the config's *_file / *_env options and Vault call them
        "secret",
        "api_secret",
        "secret_id",
        "token",
        "client_token",
        "bot_token",
        "jwt",
        "password",
        "url_secret",
        # request signatures and the headers that carry credentials (Bybit, Vault, webhooks)
        "signature",
        "sign",
        "x-bapi-sign",
        "x-bapi-api-key",
        "x-vault-token",
        "authorization",
    }
)
"""Lower-case; compare with `is_secret_field`."""


def is_secret_field(name: object) -> bool:
    """Does a field of this name hold a secret? Case does not matter (`Authorization`)."""
    return str(name).lower() in SECRET_FIELDS
