"""The API's Prometheus metrics, in one commented list, and the middleware that feeds them.

They live in the default registry (like the worker's, ``streams.metrics``), so
``GET /metrics`` shows both when they share a process. ``route`` is the route's
path template (``/api/dashboard/realtime``), ``unmatched`` for unknown paths, so
label cardinality stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests answered, by route template, method and status code.
REQUESTS = Counter(
    "eduknit_api_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
# Seconds from request start to the last byte of the answer, by route template and method.
LATENCY = Histogram(
    "eduknit_api_request_seconds", "HTTP request latency", ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
# POST progress/update outcomes: applied (200), pending (202), publish_failed (503).
PROGRESS_UPDATES = Counter(
    "eduknit_api_progress_updates_total", "Progress updates by outcome", ["outcome"]
)
# Seconds a POST waited for the pipeline to apply its event (applied ones only).
APPLY_WAIT = Histogram(
    "eduknit_api_apply_wait_seconds", "Wait until a posted event was applied",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)  # fmt: skip
# Dashboard reads answered from the kept payloads (hit) or read from ClickHouse (miss);
# reads while the change feed is stale are neither.
DASHBOARD_CACHE = Counter(
    "eduknit_api_dashboard_cache_total", "Dashboard payload look-ups by result", ["result"]
)
# Live streams (GET /api/dashboard/stream, ``api.stream_hub``): open now; dashboard
# events handed to them; reads made for them (one per changed student, shared by all
# of that student's streams); seconds from the start of the change feed's poll that saw
# a change to its event being handed to the streams.
OPEN_STREAMS = Gauge("eduknit_api_open_streams", "Open live dashboard streams")
STREAM_EVENTS = Counter("eduknit_api_stream_events_total", "Dashboard events handed to streams")
STREAM_READS = Counter("eduknit_api_stream_reads_total", "Dashboard reads for live streams")
STREAM_PUSH = Histogram(
    "eduknit_api_stream_push_seconds", "Change seen by the feed -> event handed to the streams",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
# Events of the docs/ingest.md batch routes by route and outcome: accepted (acknowledged by
# Kafka) or rejected (refused with a reason, not produced).
INGESTED_EVENTS = Counter(
    "eduknit_api_ingested_events_total", "Events of the batch routes by outcome",
    ["route", "outcome"],
)  # fmt: skip
# xAPI statements acknowledged, by verb IRI and outcome: counted (produced as an event)
# or ignored (accepted, not counted). The first 100 verbs seen are named, later ones "other".
XAPI_STATEMENTS = Counter(
    "eduknit_api_xapi_statements_total", "xAPI statements by verb and outcome", ["verb", "outcome"]
)


def route_label(scope: Scope) -> str:
    """The route template a request matched, or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware: counts each HTTP request and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = route_label(scope)
            method = scope.get("method", "")
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(time.perf_counter() - started)
