"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from rotator.adapters.sdnotify import SdNotify


@pytest.fixture(name="listener")
def _listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def recv(sock) -> str:
    return sock.recv(4096).decode()


def test_ready_status_watchdog_stopping(listener):
    path, sock = listener
    sd = SdNotify({"NOTIFY_SOCKET": str(path)})
    assert sd.enabled
    assert sd.ready(status="running: 2 keys")
    assert recv(sock) == "READY=1\nSTATUS=running: 2 keys"
    assert sd.watchdog()
    assert recv(sock) == "WATCHDOG=1"
    assert sd.status("line one\nline two")
    assert recv(sock) == "STATUS=line one line two"
    assert sd.extend_timeout(timedelta(seconds=90), status="waiting for Vault")
    assert recv(sock) == "EXTEND_TIMEOUT_USEC=90000000\nSTATUS=waiting for Vault"
    assert sd.stopping()
    assert recv(sock) == "STOPPING=1"


def test_abstract_socket():
    """A leading @ names an abstract socket (Linux)."""
    name = f"rotator-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert SdNotify({"NOTIFY_SOCKET": "@" + name}).ready()
        assert recv(sock) == "READY=1"
    finally:
        sock.close()


def test_watchdog_interval_from_env():
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotify(env).watchdog_interval == timedelta(seconds=60)
    assert SdNotify({**env, "WATCHDOG_PID": "1"}).watchdog_interval is None  # not for us
    assert SdNotify({"WATCHDOG_USEC": "0"}).watchdog_interval is None


def test_outside_systemd_and_errors_never_raise(tmp_path):
    """No NOTIFY_SOCKET: a no-op. A dead socket: logged and False, never an exception."""
    assert SdNotify({}).ready() is False
    assert SdNotify({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready() is False
