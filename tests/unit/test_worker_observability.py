"""The worker's consumer lag metric and its own /metrics and /healthz (``streams.lag``,
``streams.health_server``): lag worked out by hand from offsets, clamped at 0 when
the broker under-reports the end; the server answered over real HTTP on loopback."""

from __future__ import annotations

from typing import NamedTuple

import httpx
import pytest
from prometheus_client import REGISTRY

from infra.broker import free_port
from streams.health_server import serve
from streams.lag import LagReporter, lag


class TP(NamedTuple):
    topic: str
    partition: int


@pytest.mark.parametrize(
    ("end", "committed", "expected"),
    [(120, 100, 20), (100, 100, 0), (95, 100, 0), (7, None, 7), (None, 5, None)],
)
def test_lag(end: int | None, committed: int | None, expected: int | None) -> None:
    assert lag(end, committed) == expected


def _gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "eduknit_consumer_lag", {"topic": topic, "partition": str(partition)}
    )


def test_the_reporter_follows_the_assignment() -> None:
    reporter = LagReporter(["lag-test-events"])
    ends = {TP("lag-test-events", 0): 50, TP("lag-test-events", 1): 10, TP("other", 0): 99}
    committed = {TP("lag-test-events", 0): 40, TP("lag-test-events", 1): 12}
    reporter.update(list(ends), ends.get, committed)
    assert (_gauge("lag-test-events", 0), _gauge("lag-test-events", 1)) == (10, 0)
    assert _gauge("other", 0) is None  # not a topic of the reporter
    reporter.update([TP("lag-test-events", 1)], ends.get, committed)  # partition 0 moved away
    assert _gauge("lag-test-events", 0) is None and _gauge("lag-test-events", 1) == 0


def test_metrics_and_health_over_http() -> None:
    problem: list[str | None] = [None]
    port = free_port()
    server = serve("127.0.0.1", port, lambda: problem[0])
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        assert "eduknit_events_counted_total" in httpx.get(f"{base}/metrics", timeout=5).text
        problem[0] = "a ClickHouse write has been pending for 61 s"
        unhealthy = httpx.get(f"{base}/healthz", timeout=5)
        assert unhealthy.status_code == 503 and "61 s" in unhealthy.json()["reason"]
        assert httpx.get(f"{base}/other", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
