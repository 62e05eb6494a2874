"""ClickHouse unavailable while events flow (embedded engine: ``infra.faults`` switch).

For a few seconds every ClickHouse call of the worker and the API fails. Meanwhile:
the worker retries with backoff and commits no offset for what it could not
write, ``/readyz`` answers 503 naming ClickHouse, the dashboard endpoints answer
503 with a clear message (never 500, never stale data). Afterwards everything
sent during the outage is counted once and every dashboard equals the reference.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

import httpx
import pytest

from testkit.harness import (
    FaultStack,
    RetryingProducer,
    Streamer,
    all_match,
    interleave,
    running,
)
from testkit.history import delivery_order, student_history

pytestmark = pytest.mark.integration

COURSES = ["o-knit", "o-dye"]
CATALOG = {"o-knit": ("Knitting", 5)}
OUTAGE_SECONDS = 5.0


def test_clickhouse_outage_while_events_flow(tmp_path: Path) -> None:
    rng = random.Random(4242)
    now = dt.datetime.now(dt.UTC)
    histories = {f"o-{i}": student_history(rng, f"o-{i}", COURSES, now, 10) for i in range(8)}
    before = {s: events[: len(events) // 2] for s, events in histories.items()}
    during = {s: events[len(events) // 2 :] for s, events in histories.items()}
    with running(FaultStack(tmp_path)) as stack:
        producer = RetryingProducer(stack.bootstrap)
        for course, (title, total) in CATALOG.items():
            producer.course(course, title, total)
        for event in interleave(rng, {s: delivery_order(rng, e) for s, e in before.items()}):
            producer.send(event)
        producer.flush()
        all_match(stack, producer.sent, CATALOG)

        stack.clickhouse_down(True)
        time.sleep(1.5)  # a batch written just before finishes and is committed
        committed = stack.committed()
        stream = interleave(rng, {s: delivery_order(rng, e) for s, e in during.items()})
        started = time.monotonic()
        with Streamer(producer, stream, rate=len(stream) / (OUTAGE_SECONDS - 2)):
            ready = httpx.get(f"{stack.base_url}/readyz", timeout=10)
            assert ready.status_code == 503, ready.text
            assert ready.json()["clickhouse"].startswith("down") and ready.json()["kafka"] == "ok"
            for path in ("/api/dashboard/realtime", "/api/dashboard/statistics"):
                answer = stack.get(path, "o-0")
                assert answer.status_code == 503, answer.text
                assert answer.json() == {"detail": "ClickHouse is unavailable; try again shortly"}
                assert answer.headers["retry-after"] == "1"
        producer.flush()
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
        assert stack.metric_sum("eduknit_sink_failing") == 1
        assert stack.metric_sum("eduknit_sink_failures_total") >= 1
        assert stack.committed() == committed, "offsets were committed for unwritten events"
        stack.clickhouse_down(False)

        all_match(stack, producer.sent, CATALOG)
        assert stack.ready()
        assert stack.metric_sum("eduknit_sink_failing") == 0
