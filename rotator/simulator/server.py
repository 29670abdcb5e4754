"""The HTTP face of the simulator: the standard library's ThreadingHTTPServer.

Why the standard library: no new dependency; the handler sees the raw query string and raw body
bytes that signatures cover; it runs in a thread inside the test process; and it can close a socket
without writing a byte, which is exactly the "response lost after commit" fault.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Self

from rotator.simulator.core import HttpReply, HttpRequest

if TYPE_CHECKING:
    from rotator.simulator.core import Simulator

_MAX_BODY = 1 << 20


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator
        self.stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each keep-alive reply then waits
    # for the client's delayed ACK (about 40 ms on Linux loopback).
    disable_nagle_algorithm = True
    server_version = "bybit-simulator"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length_text = self.headers.get("Content-Length") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        if length > _MAX_BODY:
            self._send(HttpReply(status=413, body=b"body too large\n"))
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        request = HttpRequest(
            method=self.command,
            path=path,
            query=query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            peer_ip=self.client_address[0],
        )
        reply = self.server.simulator.handle(request)
        if reply.action == "hang":
            self.server.stopping.wait(self.server.simulator.options.hang_max_s)
        if reply.action != "reply":
            self.close_connection = True  # no status line, no headers: the reply is lost
            return
        self._send(reply)

    def _send(self, reply: HttpReply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 -- stdlib signature
        """Silent: the simulator keeps its own request log, which never holds a secret."""


class SimulatorServer:
    """A running simulator. `base_url` is `http://HOST:PORT`; `close()` stops it (idempotent)."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.base_url = f"http://{self.host}:{self.port}"
        self._closed = False

    @classmethod
    def start(cls, simulator: Simulator, host: str, port: int) -> SimulatorServer:
        server = _Server((host, port), simulator)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"bybit-simulator-{server.server_address[1]}",
        )
        thread.start()
        return cls(server, thread)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.stopping.set()  # releases hanging handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
