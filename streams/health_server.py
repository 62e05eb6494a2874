"""``/metrics`` and ``/healthz`` of a worker running as its own process.

The API serves ``/metrics`` for the whole process when the worker shares it (``make
run``). A separate worker (``eduknit worker``, the ``worker`` service of
docker-compose.yml) has no HTTP server of its own, so with
``EDUKNIT_WORKER_METRICS_PORT`` set it starts this one, on a daemon thread:

- ``GET /metrics``: Prometheus text of the default registry (``streams.metrics``,
  consumer lag included);
- ``GET /healthz``: 200 ``{"status": "ok"}`` while ``healthy()`` says so, else 503
  with the reason (a ClickHouse write pending for too long): what the compose
  healthcheck asks.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

Health = Callable[[], str | None]  # None: healthy; else why not


def serve(host: str, port: int, healthy: Health) -> ThreadingHTTPServer:
    """Start the server on a daemon thread; the caller may ``shutdown()`` it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                problem = healthy()
                body = (
                    {"status": "ok"}
                    if problem is None
                    else {"status": "unhealthy", "reason": problem}
                )
                self._answer(200 if problem is None else 503, json.dumps(body).encode(),
                             "application/json")  # fmt: skip
            else:
                self._answer(404, b'{"detail": "not found"}', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:  # one line per scrape is noise
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    log.info("worker metrics and health on http://%s:%d", host, server.server_address[1])
    return server
