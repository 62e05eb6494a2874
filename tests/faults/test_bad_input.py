"""Bad input through the real broker: each message to the DLQ with its reason, the rest counted.

Every kind of invalid event the issue lists (not JSON, not an object, missing,
empty or wrongly typed fields, unknown type, out-of-range minutes and scores,
bad or future timestamps, unknown zones, over-long strings, a 1 MB message, a
key that is not the studentId, ids holding control characters) is sent between
valid events. Each arrives on
``learning-events-dlq`` with a reason and the field, is counted in
``eduknit_events_invalid_total``, the worker process keeps running (same PID)
and the valid events around them are all counted (dashboards = reference).
The rules themselves are unit-tested in ``tests/unit/test_event_schema.py``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from testkit.harness import FaultStack, RetryingProducer, all_match, now_event, running

pytestmark = pytest.mark.integration


def _matrix(student: str) -> dict[str, tuple[bytes, str | None]]:
    """name -> (message value, field the dead letter must name)."""
    now = dt.datetime.now(dt.UTC)
    good = now_event(student, "c-bad")
    quiz = {**good, "type": "quiz_completed", "quizId": "q", "score": 50}

    def event(base: dict[str, Any] = good, **changes: Any) -> bytes:
        payload = {**base, "eventId": f"bad-{uuid.uuid4().hex[:8]}"}
        for key, value in changes.items():
            if value is ...:
                payload.pop(key)
            else:
                payload[key] = value
        return orjson.dumps(payload)

    future = (now + dt.timedelta(days=3)).isoformat(timespec="seconds")
    return {
        "not-json": (b"{not json", None),
        "empty-message": (b"", None),
        "array": (b"[1, 2]", None),
        "string": (b'"an event"', None),
        "missing-eventId": (event(eventId=...), "eventId"),
        "empty-courseId": (event(courseId=""), "courseId"),
        "missing-lessonId": (event(lessonId=...), "lessonId"),
        "timeSpent-string": (event(timeSpent="ten"), "timeSpent"),
        "completed-string": (event(completed="yes"), "completed"),
        "unknown-type": (event(type="lesson_started"), "type"),
        "timeSpent-negative": (event(timeSpent=-1), "timeSpent"),
        "timeSpent-over-1440": (event(timeSpent=1441), "timeSpent"),
        "score-over-100": (event(quiz, score=101), "score"),
        "score-negative": (event(quiz, score=-0.5), "score"),
        "occurredAt-without-offset": (event(occurredAt="2026-11-20T10:00:00"), "occurredAt"),
        "occurredAt-unparseable": (event(occurredAt="yesterday"), "occurredAt"),
        "occurredAt-unix-number": (event(occurredAt=1790000000), "occurredAt"),
        "occurredAt-far-future": (event(occurredAt=future), "occurredAt"),
        "timezone-unknown": (event(timezone="Mars/Olympus"), "timezone"),
        "eventId-over-128": (event(eventId="e" * 129), "eventId"),
        "courseId-over-128": (event(courseId="c" * 129), "courseId"),
        "one-megabyte": (event(padding="x" * 1_048_576), None),
        "key-not-studentId": (event(studentId=f"{student}-other"), "key"),
        "courseId-with-NUL": (event(courseId="c-bad\u0000"), "courseId"),
        "lessonId-with-line-break": (event(lessonId="l\n1"), "lessonId"),
        "eventId-with-C1-control": (event(eventId="e\u0085" + uuid.uuid4().hex[:6]), "eventId"),
    }


def test_bad_input_goes_to_the_dlq_and_the_stream_goes_on(tmp_path: Path) -> None:
    student = f"bad-{uuid.uuid4().hex[:6]}"
    matrix = _matrix(student)
    with running(FaultStack(tmp_path)) as stack:
        producer = RetryingProducer(stack.bootstrap, **{"message.max.bytes": 4_000_000})
        serve = stack.serve_pid()
        invalid_before = stack.metric_sum("eduknit_events_invalid_total", topic="learning-events")
        for index, (value, _field) in enumerate(matrix.values()):
            producer.send(now_event(student, "c-bad", lessonId=f"l{index}"))
            producer.send_raw(value, key=student)
        producer.send(now_event(student, "c-bad", lessonId="last"))
        producer.flush()
        all_match(stack, producer.sent, {})

        letters = _dead_letters(stack.bootstrap, student, len(matrix))
        by_payload = {value.decode()[:200]: name for name, (value, _) in matrix.items()}
        seen: dict[str, dict[str, Any]] = {}
        for letter in letters:
            name = by_payload.get(letter["payload"][:200])
            assert name is not None, f"unexpected dead letter {letter['reason']}"
            seen[name] = letter
        assert sorted(seen) == sorted(matrix), f"missing: {set(matrix) - set(seen)}"
        for name, letter in seen.items():
            assert letter["field"] == matrix[name][1], (name, letter["field"], letter["reason"])
            assert letter["reason"] and letter["sourceTopic"] == "learning-events", name
        assert seen["one-megabyte"]["payloadTruncated"] is True

        counted = stack.metric_sum("eduknit_events_invalid_total", topic="learning-events")
        assert counted - invalid_before == len(matrix)
        assert stack.serve_pid() == serve, "the worker restarted"
        assert stack.ready()


def _dead_letters(bootstrap: str, key: str, expected: int) -> list[dict[str, Any]]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    })  # fmt: skip
    consumer.subscribe(["learning-events-dlq"])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            if message.key() == key.encode():
                letters.append(orjson.loads(message.value()))
    finally:
        consumer.close()
    return letters
