"""One HTTP listener for Prometheus, probes and people: /metrics, /healthz, /readyz, /status.

`/healthz` answers whether the process is alive and its scheduler runs (Kubernetes liveness,
a restart fixes a hung daemon); `/readyz` whether it can do its job right now: Vault reachable and
authenticated, and the last reconcile recent (readiness, alerting). Both reply with a small JSON
body saying why. `/status` is a read-only HTML page of the last reports
(rotator/adapters/status_page.py), sent with strict security headers. The standard library's
ThreadingHTTPServer serves them from a daemon thread.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from rotator.adapters import status_page
from rotator.addresses import parse_host_port

log = structlog.get_logger(__name__)

Probe = Callable[[], tuple[bool, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Endpoints:
    registry: CollectorRegistry
    healthz: Probe
    readyz: Probe
    status: Callable[[], str] | None = None  # the /status page's HTML
    # /metrics' body when not generate_latest(registry): Metrics.exposition (cached per key;
    # called with compressed=True for a client that accepts gzip, and then already gzipped)
    exposition: Callable[..., bytes] | None = None


class _Handler(BaseHTTPRequestHandler):
    endpoints: Endpoints  # set on the subclass built per server
    server_version = "rotator"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._metrics()
            elif path in ("/healthz", "/readyz"):
                probe = self.endpoints.healthz if path == "/healthz" else self.endpoints.readyz
                ok, detail = probe()
                body = json.dumps({"ok": ok, **detail}, default=str, sort_keys=True).encode()
                self._reply(200 if ok else 503, body, "application/json")
            elif path == "/status" and self.endpoints.status is not None:
                page = self.endpoints.status().encode()
                self._reply(200, page, status_page.CONTENT_TYPE, status_page.SECURITY_HEADERS)
            else:
                hint = b"not found: try /status, /metrics, /healthz or /readyz\n"
                self._reply(404, hint, "text/plain")
        except Exception as exc:  # noqa: BLE001 (a probe bug answers 500, never kills the server)
            log.error("http.handler_failed", path=path, error=type(exc).__name__)
            self._reply(500, b"internal error\n", "text/plain")

    def _metrics(self) -> None:
        render = self.endpoints.exposition
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")  # Prometheus asks for it
        if render is not None:
            body = render(compressed=gzipped)
        else:
            body = generate_latest(self.endpoints.registry)
            body = gzip.compress(body, compresslevel=1) if gzipped else body
        headers = {"Content-Encoding": "gzip"} if gzipped else {}
        self._reply(200, body, CONTENT_TYPE_LATEST, headers)

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] = {}
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {"Cache-Control": "no-store", **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        del format, args  # probes every few seconds would drown the log


class HealthServer:
    """The listener. `start()` binds (raising OSError when the address is taken)."""

    def __init__(self, listen: str, endpoints: Endpoints) -> None:
        self._address = parse_host_port(listen)
        handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        self._server: ThreadingHTTPServer | None = None
        self._handler = handler
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = ThreadingHTTPServer(self._address, self._handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="rotator-http"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("http.listening", url=self.url)

    @property
    def url(self) -> str:
        if self._server is None:
            return ""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
