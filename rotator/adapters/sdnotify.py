"""systemd's notify protocol without a dependency: one datagram per message to $NOTIFY_SOCKET.

`READY=1` once the daemon serves, `WATCHDOG=1` every half of `$WATCHDOG_USEC` while it is healthy,
`STOPPING=1` on shutdown, `STATUS=...` lines for `systemctl status`, and `EXTEND_TIMEOUT_USEC=...`
while a start-up waits for Vault or Bybit (so systemd neither kills nor restarts it in a loop).

A socket path starting with `@` is an abstract socket (Linux): the `@` becomes a NUL byte. Outside
systemd (`NOTIFY_SOCKET` unset) every call is a no-op. Errors are logged, never raised: a lost
notification must not take the daemon down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta

import structlog

log = structlog.get_logger(__name__)


class SdNotify:
    """Sends notify messages to systemd (or to any datagram socket a test binds)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET") or None
        self._address: str | bytes | None = None
        if path is not None:
            self._address = "\0" + path[1:] if path.startswith("@") else path
        self._watchdog = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> timedelta | None:
        """systemd's WatchdogSec= for this process, or None when no watchdog is set."""
        return self._watchdog

    def notify(self, *lines: str) -> bool:
        """Send the lines as one message. True if sent (False outside systemd or on error)."""
        if self._address is None or not lines:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1.0)
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            log.warning(
                "sdnotify.send_failed",
                message=lines[0].split("=", 1)[0],
                error=exc.strerror or type(exc).__name__,
            )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *(_status(status)))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *(_status(status)))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def extend_timeout(self, by: timedelta, status: str | None = None) -> bool:
        """Ask for more start-up (or stop) time: systemd's TimeoutStartSec restarts from now."""
        usec = int(by.total_seconds() * 1_000_000)
        return self.notify(f"EXTEND_TIMEOUT_USEC={usec}", *(_status(status)))


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.split()),)  # one line: a newline would end the field


def _watchdog_interval(env: Mapping[str, str]) -> timedelta | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # the watchdog is meant for another process (we were forked or exec'd)
    return timedelta(microseconds=int(usec))
