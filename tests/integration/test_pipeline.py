"""End to end: events → Tansu → Faust worker → embedded ClickHouse → HTTP API.

Runs the pipeline exactly as ``make run`` does (one ``eduknit.cli run`` process)
and checks every field of ``/realtime`` and ``/statistics`` against the
independent reference, after varied, shuffled, duplicated and invalid input.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer

from testkit.compare import check_student, wait_for_match
from testkit.history import delivery_order, student_history
from testkit.stack import Producer, Stack

pytestmark = pytest.mark.integration

COURSES = ["c-knit", "c-crochet", "c-dye", "c-spin"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(Path(tmp_path_factory.mktemp("pipeline"))).start()
    try:
        yield running
    finally:
        running.stop()


def _sentinel(student: str, course: str) -> dict[str, Any]:
    """A last event per student: once it shows, everything before it was applied."""
    return {
        "eventId": f"{student}-sentinel-{uuid.uuid4().hex[:6]}", "type": "lesson_progress",
        "studentId": student, "courseId": course, "lessonId": "l-sentinel", "completed": False,
        "occurredAt": dt.datetime.now(dt.UTC).isoformat(),
    }  # fmt: skip


def test_varied_history_matches_reference(stack: Stack) -> None:
    rng = random.Random(20261126)
    now = dt.datetime.now(dt.UTC)
    producer = Producer(stack.bootstrap)
    catalog = {"c-knit": ("Knitting 101", 8), "c-crochet": ("Crochet Basics", 5)}
    for course, (title, total) in catalog.items():
        producer.course(course, title, total)
    histories = {
        f"student-{i:02d}": student_history(rng, f"student-{i:02d}", COURSES, now)
        for i in range(10)
    }
    sent: dict[str, list[dict[str, Any]]] = {}
    everything = []
    for student, events in histories.items():
        sent[student] = delivery_order(rng, events)
        everything.extend(sent[student])
    rng.shuffle(everything)
    for index, event in enumerate(everything):
        producer.event(event)
        if index % 97 == 0:  # bad input between good events must not stop anything
            producer.event(b"{not json", key=event["studentId"])
    producer.flush()
    # The catalog changes later: a course is re-rated and another appears after its events.
    catalog["c-knit"] = ("Knitting 101 (2nd ed.)", 10)
    catalog["c-dye"] = ("Natural Dyeing", 4)
    producer.course("c-knit", *catalog["c-knit"])
    producer.course("c-dye", *catalog["c-dye"])
    for student, events in histories.items():
        sentinel = _sentinel(student, events[0]["courseId"])
        producer.event(sentinel)
        sent[student].append(sentinel)
    producer.flush()

    def differences() -> list[str]:
        problems: list[str] = []
        for student, events in sent.items():
            problems += check_student(stack, student, events, catalog)
        return problems

    wait_for_match(differences, timeout=90)
    # "Today" in another zone than the learner's own.
    student = next(iter(sent))
    wait_for_match(
        lambda: check_student(stack, student, sent[student], catalog, tz="Pacific/Kiritimati")
    )


def test_invalid_events_go_to_the_dead_letter_topic(stack: Stack) -> None:
    student = f"dlq-{uuid.uuid4().hex[:6]}"
    producer = Producer(stack.bootstrap)
    good = _sentinel(student, f"c-{student}")  # a course no catalog entry names
    bad = {
        "not-json": b"{oops",
        "array": b"[1, 2]",
        "score": orjson.dumps(
            {**good, "eventId": "x1", "type": "quiz_completed", "quizId": "q", "score": 101}
        ),
        "zone": orjson.dumps({**good, "eventId": "x2", "timezone": "Mars/Olympus"}),
        "offset": orjson.dumps({**good, "eventId": "x3", "occurredAt": "2026-11-26T10:00:00"}),
    }
    for value in bad.values():
        producer.event(value, key=student)
    producer.event(good)
    producer.flush()
    wait_for_match(lambda: check_student(stack, student, [good], {}))

    consumer = Consumer({
        "bootstrap.servers": stack.bootstrap, "group.id": f"dlq-check-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
    })  # fmt: skip
    consumer.subscribe(["learning-events-dlq"])
    reasons: dict[str, dict[str, Any]] = {}
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while len(reasons) < len(bad) and dt.datetime.now() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        if message.key() == student.encode():
            letter = orjson.loads(message.value())
            reasons[letter["payload"]] = letter
    consumer.close()
    assert len(reasons) == len(bad), f"dead letters seen: {list(reasons)}"
    by_payload = {value.decode(): name for name, value in bad.items()}
    fields = {by_payload[payload]: letter["field"] for payload, letter in reasons.items()}
    assert fields == {
        "not-json": None,
        "array": None,
        "score": "score",
        "zone": "timezone",
        "offset": "occurredAt",
    }
    assert all(
        letter["reason"] and letter["sourceTopic"] == "learning-events"
        for letter in reasons.values()
    )


def test_post_progress_update_is_applied_and_idempotent(stack: Stack) -> None:
    student = f"poster-{uuid.uuid4().hex[:6]}"
    producer = Producer(stack.bootstrap)
    producer.course("c-post", "Posting 101", 4)
    producer.flush()
    catalog = {"c-post": ("Posting 101", 4)}
    headers = {"Authorization": f"Bearer {stack.token(student)}"}
    body = {"courseId": "c-post", "lessonId": "l1", "timeSpent": 12.5, "completed": True}
    wait_for_match(lambda: [] if _catalog_known(stack, "c-post", "Posting 101") else ["no catalog"])
    started = dt.datetime.now()
    response = httpx.post(
        f"{stack.base_url}/api/dashboard/progress/update", json=body, headers=headers, timeout=30
    )
    elapsed = (dt.datetime.now() - started).total_seconds()
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["applied"] is True and answer["eventId"]
    assert answer["course"]["courseId"] == "c-post"
    assert answer["course"]["completedLessons"] == 1
    assert answer["course"]["progress"] == 25.0
    assert answer["course"]["timeSpentMinutes"] == 12.5
    assert answer["summary"]["totalPoints"] == 10 and answer["summary"]["enrolledCourses"] == 1
    assert elapsed < 5

    again = httpx.post(
        f"{stack.base_url}/api/dashboard/progress/update",
        json={**body, "eventId": answer["eventId"]}, headers=headers, timeout=30,
    )  # fmt: skip
    assert again.status_code == 200 and again.json()["summary"] == answer["summary"]
    assert again.json()["course"] == answer["course"]
    realtime = stack.get("/api/dashboard/realtime", student).json()
    event = {
        "eventId": answer["eventId"], "type": "lesson_progress", "studentId": student,
        "courseId": "c-post", "lessonId": "l1", "timeSpent": 12.5, "completed": True,
        "occurredAt": realtime["recentActivity"][0]["occurredAt"],
    }  # fmt: skip
    assert check_student(stack, student, [event], catalog) == []


def _catalog_known(stack: Stack, course: str, title: str) -> bool:
    """True once a probe student enrolled in ``course`` sees its catalog title."""
    probe = f"probe-{course}"
    producer = Producer(stack.bootstrap)
    producer.event({
        "eventId": f"{probe}-enrolled", "type": "enrolled", "studentId": probe, "courseId": course,
        "occurredAt": "2026-01-01T00:00:00Z",
    })  # fmt: skip
    producer.flush()
    courses = stack.get("/api/dashboard/realtime", probe).json()["courses"]
    return any(c["title"] == title for c in courses)


def test_http_errors_through_the_real_server(stack: Stack) -> None:
    url = f"{stack.base_url}/api/dashboard/realtime"
    assert httpx.get(url, timeout=10).status_code == 401
    other = {"Authorization": f"Bearer {stack.token('alice')}"}
    assert httpx.get(url, params={"studentId": "bob"}, headers=other, timeout=10).status_code == 403
    expired = {"Authorization": f"Bearer {stack.token('alice', ttl=-60)}"}
    assert httpx.get(url, headers=expired, timeout=10).status_code == 401
    stats = httpx.get(
        f"{stack.base_url}/api/dashboard/statistics", params={"days": 0}, headers=other, timeout=10
    )
    assert stats.status_code == 422 and "days" in stats.text
    unknown = httpx.get(
        url,
        headers={"Authorization": f"Bearer {stack.token('nobody-' + uuid.uuid4().hex)}"},
        timeout=10,
    )
    assert unknown.status_code == 200 and unknown.json()["courses"] == []
    assert httpx.get(f"{stack.base_url}/healthz", timeout=10).status_code == 200
