"""Listen addresses as people write them: `HOST:PORT`, `[::1]:PORT` for IPv6, port 0 for any free
port. One parser for the config's `metrics.listen`, the health server and `rotator simulate`."""

from __future__ import annotations

_MAX_PORT = 65535


def parse_host_port(text: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT`, the brackets of an IPv6 host removed.

    Raises ValueError when there is no host, no colon, or a port that is not 0-65535; callers
    word their own message, since each names the place the address came from.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > _MAX_PORT:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
