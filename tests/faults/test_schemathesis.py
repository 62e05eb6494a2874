"""Schemathesis against the app's own OpenAPI schema: no input makes a 5xx.

Every operation of ``/openapi.json`` (dashboard reads, POST progress/update,
the docs/ingest.md batch routes POST /api/events and POST/PUT /xapi/statements,
health, metrics) is called with generated valid and invalid query values and
bodies, with a valid token (role ``service``: it may read anyone's data and
write for anyone, so the generated ``studentId`` values reach the handlers).
The app runs in process on the session's embedded ClickHouse; Kafka is a fake
that accepts every event. The auth matrix and the 422 bodies are tested in
``tests/unit/test_api_http.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import schemathesis
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from api.main import create_app
from infra.settings import Settings
from infra.tokens import make_token
from tests.unit.test_api_http import FakePublisher

SECRET = "schemathesis-secret-" + "s" * 40
NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
AUTH = {"Authorization": f"Bearer {make_token(SECRET, 'svc', role='service', ttl_seconds=86400)}"}

EXAMPLES = 60
BATCH_ROUTES = ("/api/events", "/xapi/")  # docs/ingest.md: also called with schema-breaking bodies


def test_no_input_makes_a_server_error(ch_client: Client) -> None:
    config = Settings(  # type: ignore[call-arg]
        EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_APPLY_WAIT_SECONDS=0.05
    )
    app = create_app(config, ch_client, FakePublisher(ch_client, mode="ignore"), clock=lambda: NOW)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/dashboard/stream":  # a 200 never ends; its errors are the
            continue  # /realtime ones (tests/unit/test_stream.py checks they are the same)
        label = f"{operation.method.upper()} {operation.path}"
        _exercise(operation, label, calls, failures)
        if operation.path.startswith(BATCH_ROUTES):  # bodies that break the schema too
            _exercise(operation, label, calls, failures, GenerationMode.NEGATIVE)
    assert {
        "GET /api/dashboard/realtime", "POST /api/dashboard/progress/update", "POST /api/events",
        "POST /xapi/statements", "PUT /xapi/statements",
    } <= set(calls)  # fmt: skip
    assert not failures, "\n".join(failures[:10])


def _exercise(
    operation: Any, label: str, calls: dict[str, int], failures: list[str],
    mode: GenerationMode = GenerationMode.POSITIVE,
) -> None:  # fmt: skip
    """Call one operation with ``EXAMPLES`` generated cases; record 5xx answers."""

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        response = case.call(headers=AUTH)
        calls[label] = calls.get(label, 0) + 1
        if response.status_code >= 500:
            failures.append(f"{label} {case.query} {case.body!r}: {response.status_code}")

    call()
