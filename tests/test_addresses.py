"""The one HOST:PORT parser: config's metrics.listen, the health server, `rotator simulate`."""

from __future__ import annotations

import pytest
from rotator.addresses import parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),  # noqa: S104 (parsed, not bound)
        ("[::1]:8080", ("::1", 8080)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_host_and_port(text: str, expected: tuple[str, int]) -> None:
    """The host without IPv6 brackets, the port as a number; 0 means any free port."""
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["9464", ":9464", "127.0.0.1:", "127.0.0.1:65536", "h:-1", "h:9²"])
def test_not_host_port(text: str) -> None:
    """No host, no colon, a port out of range or not ASCII digits: ValueError naming the text."""
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_host_port(text)
