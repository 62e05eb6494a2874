"""Broker restart mid-stream: the memory-only broker dies and a fresh, empty one starts.

The supervisor replaces the SIGKILLed broker on the same port. What it held is
gone, so the producers re-send everything they sent (the model of producers
retrying unacknowledged or lost sends; re-sending is safe). The worker and the
API reconnect on their own: counted events stay counted, re-sent ones count
once, events sent after the restart are counted, and POST progress/update works.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from testkit.harness import (
    FaultStack,
    RetryingProducer,
    Streamer,
    all_match,
    interleave,
    now_event,
    running,
)
from testkit.history import delivery_order, student_history

pytestmark = pytest.mark.integration

COURSES = ["b-knit", "b-dye"]
CATALOG = {"b-knit": ("Knitting", 5)}


@dataclass
class Restarted:
    stack: FaultStack
    producer: RetryingProducer


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restarted]:
    """A stack whose broker was SIGKILLed mid-stream, with everything re-sent after."""
    rng = random.Random(777)
    now = dt.datetime.now(dt.UTC)
    histories = {f"b-{i}": student_history(rng, f"b-{i}", COURSES, now, 10) for i in range(8)}
    stream = interleave(rng, {s: delivery_order(rng, e) for s, e in histories.items()})
    with running(FaultStack(tmp_path_factory.mktemp("broker"))) as stack:
        producer = RetryingProducer(stack.bootstrap)
        for course, (title, total) in CATALOG.items():
            producer.course(course, title, total)
        with Streamer(producer, stream[: len(stream) // 2], rate=len(stream) / 6) as streamer:
            time.sleep(1.0)
            assert not streamer.done, "the stream ended before the restart"
            stack.kill_broker()
            streamer.wait(60)
        producer.flush()
        # Producers re-send what the empty broker lost, the catalog included.
        for course, (title, total) in CATALOG.items():
            producer.course(course, title, total)
        producer.resend_all(rng)
        for event in stream[len(stream) // 2 :]:  # the rest of the stream, after the restart
            producer.send(event)
        producer.flush()
        yield Restarted(stack, producer)


def test_worker_recovers_after_broker_restart(restarted: Restarted) -> None:
    all_match(restarted.stack, restarted.producer.sent, CATALOG, timeout=120)


def test_post_progress_update_after_broker_restart(restarted: Restarted) -> None:
    stack, student = restarted.stack, "b-0"
    all_match(stack, restarted.producer.sent, CATALOG, timeout=120)
    body = {"courseId": "b-knit", "lessonId": "l-post", "timeSpent": 3, "completed": True}
    answer = httpx.post(
        f"{stack.base_url}/api/dashboard/progress/update", json=body, timeout=30,
        headers={"Authorization": f"Bearer {stack.token(student)}"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    posted = now_event(student, "b-knit", lessonId="l-post", timeSpent=3)
    posted["eventId"] = answer.json()["eventId"]
    realtime = stack.get("/api/dashboard/realtime", student).json()
    posted["occurredAt"] = next(
        a["occurredAt"] for a in realtime["recentActivity"] if a["eventId"] == posted["eventId"]
    )
    all_match(stack, {student: [*restarted.producer.sent[student], posted]}, CATALOG)
