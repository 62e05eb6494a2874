"""The API process killed during POST progress/update: retrying with the same eventId is safe.

Two interrupted requests, each retried by the client with the same body and
``eventId`` once the supervisor has restarted the process:
- killed after the event reached Kafka but before the answer (ClickHouse is
  held down so the POST is still waiting for the worker to apply it): the
  retry produces the event a second time, which counts once;
- killed a random few milliseconds after the request was sent (before or
  after producing, whichever came first).
Each retry answers 200 ``applied``, and the dashboards count each event once.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer

from testkit.harness import FaultStack, RetryingProducer, all_match, running

pytestmark = pytest.mark.integration

CATALOG = {"a-knit": ("Knitting", 4)}


def _post(stack: FaultStack, student: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}/api/dashboard/progress/update", json=body, timeout=60,
        headers={"Authorization": f"Bearer {stack.token(student)}"},
    )  # fmt: skip


class _Request(threading.Thread):
    """One POST in the background; ``outcome`` is the response or the exception."""

    def __init__(self, stack: FaultStack, student: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.args_ = (stack, student, body)
        self.outcome: httpx.Response | Exception | None = None

    def run(self) -> None:
        try:
            self.outcome = _post(*self.args_)
        except httpx.HTTPError as exc:
            self.outcome = exc


def _wait_in_topic(bootstrap: str, event_id: str, timeout: float = 30) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"watch-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    })  # fmt: skip
    consumer.subscribe(["learning-events"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error() and event_id.encode() in message.value():
                return
    finally:
        consumer.close()
    raise AssertionError(f"event {event_id} never reached Kafka")


def _event(student: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": body["eventId"], "type": "lesson_progress", "studentId": student,
        "courseId": body["courseId"], "lessonId": body["lessonId"],
        "timeSpent": body["timeSpent"], "completed": body["completed"],
        "occurredAt": body["occurredAt"],
    }  # fmt: skip


def test_api_killed_during_post_then_retry(tmp_path: Path) -> None:
    rng = random.Random(5)
    student = f"a-{uuid.uuid4().hex[:6]}"
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    bodies = [
        {
            "eventId": f"{student}-post-{n}",
            "courseId": "a-knit",
            "lessonId": f"l{n}",
            "timeSpent": 4.5 + n,
            "completed": True,
            "occurredAt": (stamp + dt.timedelta(minutes=n)).isoformat(timespec="milliseconds"),
        }
        for n in range(2)
    ]
    with running(FaultStack(tmp_path, EDUKNIT_APPLY_WAIT_SECONDS="30")) as stack:
        catalog_producer = RetryingProducer(stack.bootstrap)
        catalog_producer.course("a-knit", *CATALOG["a-knit"])
        catalog_producer.flush()
        # A student may only post for a catalog course: wait until the API knows it.
        probe = _event(f"{student}-probe", {**bodies[0], "eventId": f"{student}-probe"})
        catalog_producer.send(probe)
        catalog_producer.flush()
        all_match(stack, {probe["studentId"]: [probe]}, CATALOG)

        # 1. Killed after producing, while waiting for the worker to apply it (the worker
        # cannot write; the API still reads, so it checks the claim and produces it).
        stack.clickhouse_down(True, writes_only=True)
        request = _Request(stack, student, bodies[0])
        request.start()
        _wait_in_topic(stack.bootstrap, bodies[0]["eventId"])
        stack.kill_worker(after_kill=lambda: stack.clickhouse_down(False))
        request.join(30)
        assert isinstance(request.outcome, httpx.HTTPError), request.outcome

        # 2. Killed a few milliseconds into the request.
        request = _Request(stack, student, bodies[1])
        request.start()
        time.sleep(rng.uniform(0.0, 0.05))
        stack.kill_worker()
        request.join(30)

        for body in bodies:  # the client retries with the same eventId
            answer = _post(stack, student, body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["applied"] is True and answer.json()["eventId"] == body["eventId"]
        all_match(stack, {student: [_event(student, b) for b in bodies]}, CATALOG)
        assert stack.get("/api/dashboard/realtime", student).json()["summary"]["totalPoints"] == 20
