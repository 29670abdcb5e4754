"""One list of secret field names, one meaning: logs mask the value, the config file refuses it."""

from __future__ import annotations

import pytest
from rotator import config, logs
from rotator.errors import ConfigError
from rotator.model import REDACTED
from rotator.secret_fields import SECRET_FIELDS

from fixtures.configs import ACCOUNT


@pytest.mark.parametrize("name", sorted(SECRET_FIELDS))
def test_the_config_refuses_every_secret_field(name: str) -> None:
    """Anywhere in the file, in any case, with the *_file / *_env fix named."""
    for spelled in (name, name.upper()):
        with pytest.raises(ConfigError, match="secrets never live in the config") as info:
            config.parse(f'{ACCOUNT}[vault.auth]\n"{spelled}" = "s3cr3t"\n', source="rot.toml")
        assert f"{spelled}_file" in info.value.message


@pytest.mark.parametrize("name", sorted(SECRET_FIELDS))
def test_logs_mask_every_secret_field(name: str) -> None:
    """As an event's own field, in any case, and nested in a mapping (headers, a request)."""
    event = logs.redact(None, "info", {name.title(): "s3cr3t", "request": {name: "s3cr3t"}})
    assert event == {name.title(): REDACTED, "request": {name: REDACTED}}
