"""Trust at the edge through the whole stack, configured for production.

One ``eduknit.cli run`` (embedded broker, Faust worker, embedded ClickHouse, API)
with ``EDUKNIT_ENV=production`` and one CORS origin. Checked against the
independent reference (``testkit.reference``, which applies the lesson rules):

- the attack of the issue: a student token claims made-up lessons, a course that
  does not exist, more than 1,440 minutes on a day, 61 requests in a minute; each
  gets its status and field, and none of it changes the dashboards;
- made-up lessons produced straight to Kafka are dead letters ``unknown_lesson``;
- a catalog entry that gains a lesson list after unlisted completions were
  counted re-rates the dashboards at once, without any dashboard row written; a
  lesson removed from the list stops counting, added back counts again;
- the HTTP limits through the real server: 413 by Content-Length and chunked, deep
  and malformed JSON, a NUL in an id, CORS preflights allowed and refused, a
  token without ``exp``, ``/docs`` with local assets.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from testkit.compare import check_student, wait_for_match
from testkit.stack import SECRET, Producer, Stack
from tests.faults.test_bad_input import _dead_letters

pytestmark = pytest.mark.integration

ORIGIN = "https://learn.example.org"
POST = "/api/dashboard/progress/update"
LESSONS = [f"l{i}" for i in range(1, 25)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        Path(tmp_path_factory.mktemp("trust")),
        EDUKNIT_ENV="production",
        EDUKNIT_CORS_ORIGINS=ORIGIN,
    ).start()
    try:
        yield running
    finally:
        running.stop()


def _post(stack: Stack, student: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.token(student)}"}
    return httpx.post(f"{stack.base_url}{POST}", json=body, headers=headers, timeout=30)


def _metric(stack: Stack, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(f"{stack.base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rpartition(" ")[2])
    return total


def _event(student: str, course: str, lesson: str, at: dt.datetime, **more: Any) -> dict[str, Any]:
    return {
        "eventId": f"{student}-{uuid.uuid4().hex[:10]}", "type": "lesson_progress",
        "studentId": student, "courseId": course, "lessonId": lesson, "completed": True,
        "timeSpent": 20, "occurredAt": at.isoformat(timespec="milliseconds"), **more,
    }  # fmt: skip


def _catalog_seen(stack: Stack, course: str, total: int) -> None:
    """Wait until the API sees ``course`` with ``total`` lessons, then a little more for
    the worker's lists (read again within a second of a change)."""
    probe = f"probe-{course}-{uuid.uuid4().hex[:6]}"
    producer = Producer(stack.bootstrap)
    producer.event({
        "eventId": f"{probe}-enrolled", "type": "enrolled", "studentId": probe,
        "courseId": course, "occurredAt": "2026-01-01T00:00:00Z",
    })  # fmt: skip
    producer.flush()

    def seen() -> list[str]:
        courses = stack.get("/api/dashboard/realtime", probe).json()["courses"]
        return [] if any(c["totalLessons"] == total for c in courses) else ["catalog not seen"]

    wait_for_match(seen, timeout=60)
    time.sleep(2.0)


def test_the_attack_changes_nothing(stack: Stack) -> None:
    student, course = f"learner-{uuid.uuid4().hex[:6]}", "t-knit"
    catalog = {course: ("Knitting 101", 24, LESSONS)}
    producer = Producer(stack.bootstrap)
    producer.course(course, "Knitting 101", 24, LESSONS)
    producer.flush()
    _catalog_seen(stack, course, 24)
    # What the learner really did, reported by the platform (a trusted producer).
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    real = [
        _event(student, course, f"l{i + 1}", now - dt.timedelta(days=5 - i, hours=1))
        for i in range(5)
    ]
    for event in real:
        producer.event(event)
    producer.flush()
    wait_for_match(lambda: check_student(stack, student, real, catalog))
    before = stack.get("/api/dashboard/realtime", student).json()

    made_up = [
        _post(stack, student, {"courseId": course, "lessonId": f"l-fake-{i}", "completed": True,
                               "timeSpent": 30})
        for i in range(30)
    ]  # fmt: skip
    assert {(r.status_code, r.json()["detail"][0]["field"]) for r in made_up} == {(422, "lessonId")}
    nowhere = _post(stack, student, {"courseId": "c-does-not-exist", "lessonId": "l1",
                                     "completed": True})  # fmt: skip
    assert (nowhere.status_code, nowhere.json()["detail"][0]["field"]) == (422, "courseId")
    # 1,440 minutes on one local date: 1,000 are fine (real work), 500 more are not.
    day = {"occurredAt": now.isoformat(), "completed": False}
    spent = _post(stack, student, {"courseId": course, "lessonId": "l6", "timeSpent": 1000, **day})
    assert spent.status_code == 200, spent.text
    real.append(_event(student, course, "l6", now, eventId=spent.json()["eventId"],
                       completed=False, timeSpent=1000))  # fmt: skip
    over = _post(stack, student, {"courseId": course, "lessonId": "l7", "timeSpent": 500, **day})
    assert (over.status_code, over.json()["detail"][0]["field"]) == (422, "timeSpent")
    # 61 requests in a minute: 33 were sent above, the 61st is refused whatever it is.
    answers = [
        _post(stack, student, {"courseId": course, "lessonId": "l-fake", "completed": True})
        for _ in range(27)
    ]
    assert all(a.status_code == 422 for a in answers)
    limited = _post(stack, student, {"courseId": course, "lessonId": "l8", "completed": True})
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60

    wait_for_match(lambda: check_student(stack, student, real, catalog))
    after = stack.get("/api/dashboard/realtime", student).json()
    assert after["summary"]["totalPoints"] == before["summary"]["totalPoints"] == 50
    assert after["courses"][0]["completedLessons"] == 5


def test_made_up_lessons_sent_to_kafka_are_dead_letters(stack: Stack) -> None:
    student, course = f"bypass-{uuid.uuid4().hex[:6]}", "t-listed"
    catalog = {course: ("Listed", 3, ["a", "b", "c"])}
    producer = Producer(stack.bootstrap)
    producer.course(course, "Listed", 3, ["a", "b", "c"])
    producer.flush()
    _catalog_seen(stack, course, 3)
    now = dt.datetime.now(dt.UTC)
    good = [_event(student, course, "a", now - dt.timedelta(hours=2))]
    fakes = [_event(student, course, f"x{i}", now - dt.timedelta(hours=1)) for i in range(3)]
    for event in [*good, *fakes]:
        producer.event(event)
    producer.flush()
    wait_for_match(lambda: check_student(stack, student, good, catalog))
    letters = _dead_letters(stack.bootstrap, student, len(fakes))
    assert sorted(orjson.loads(letter["payload"])["lessonId"] for letter in letters) == [
        "x0", "x1", "x2",
    ]  # fmt: skip
    assert {(letter["reason"], letter["field"]) for letter in letters} == {
        ("unknown_lesson", "lessonId")
    }


def test_a_list_gained_later_rerates_without_any_rewrite(stack: Stack) -> None:
    course = f"t-later-{uuid.uuid4().hex[:4]}"
    students = [f"early-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    producer = Producer(stack.bootstrap)
    producer.course(course, "Later", 10)
    producer.flush()
    _catalog_seen(stack, course, 10)
    now = dt.datetime.now(dt.UTC)
    sent: dict[str, list[dict[str, Any]]] = {}
    for n, student in enumerate(students):
        lessons = ["l1", "l2", "l3", "x-extra", "l4", "y-extra"][: 4 + n * 2]
        sent[student] = [
            _event(student, course, lesson, now - dt.timedelta(days=len(lessons) - i))
            for i, lesson in enumerate(lessons)
        ]
        for event in sent[student]:
            producer.event(event)
    producer.flush()

    def all_match(catalog: dict[str, tuple[Any, ...]]) -> None:
        wait_for_match(
            lambda: [p for s in students for p in check_student(stack, s, sent[s], catalog)]
        )

    all_match({course: ("Later", 10, None)})
    written = _metric(stack, "eduknit_rows_written_total", table="student_dashboard")
    for lessons in (
        ["l1", "l2", "l3", "l4", "l5"],  # the extras stop counting
        ["l1", "l3", "l4"],  # l2 removed from the list
        ["l1", "l2", "l3", "l4", "x-extra"],  # l2 back, and one extra listed now
    ):
        producer.course(course, "Later", 10, lessons)
        producer.flush()
        all_match({course: ("Later", 10, lessons)})
    assert _metric(stack, "eduknit_rows_written_total", table="student_dashboard") == written


# ----------------------------------------------------- HTTP through the server
def test_http_limits_through_the_real_server(stack: Stack) -> None:
    url = f"{stack.base_url}{POST}"
    headers = {"Authorization": f"Bearer {stack.token('limits')}"}
    json_headers = {**headers, "Content-Type": "application/json"}
    big = orjson.dumps({"courseId": "t-knit", "lessonId": "l1", "pad": "x" * 70_000})
    assert httpx.post(url, content=big, headers=json_headers, timeout=30).status_code == 413

    def chunked() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 4096

    response = httpx.post(url, content=chunked(), headers=json_headers, timeout=30)
    assert response.status_code == 413
    for content, kind in ((b"[" * 100 + b"]" * 100, "json_too_deep"),
                          (b'{"courseId": ', "json_invalid")):  # fmt: skip
        response = httpx.post(url, content=content, headers=json_headers, timeout=30)
        assert response.status_code == 422
        assert response.json()["detail"][0] == {
            "field": "body", "location": "body", "message": response.json()["detail"][0]["message"],
            "type": kind,
        }  # fmt: skip
    nul = {"courseId": "t-knit\u0000", "lessonId": "l1", "completed": True}
    response = httpx.post(url, json=nul, headers=headers, timeout=30)
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "courseId"


def test_cors_and_tokens_and_docs_through_the_real_server(stack: Stack) -> None:
    url = f"{stack.base_url}/api/dashboard/realtime"
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip
    allowed = httpx.options(url, headers={"Origin": ORIGIN, **preflight}, timeout=10)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    refused = httpx.options(url, headers={"Origin": "https://evil.example", **preflight},
                            timeout=10)  # fmt: skip
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

    forever = jwt.encode({"sub": "s1", "role": "student"}, SECRET, algorithm="HS256")
    no_exp = httpx.get(url, headers={"Authorization": f"Bearer {forever}"}, timeout=10)
    assert no_exp.status_code == 401 and "exp" in no_exp.json()["detail"]
    assert stack.get("/api/dashboard/realtime", "s1").status_code == 200

    docs = httpx.get(f"{stack.base_url}/docs", timeout=10)
    assert docs.status_code == 200 and "cdn." not in docs.text
    assert httpx.get(f"{stack.base_url}/docs-assets/swagger-ui-bundle.js", timeout=10).is_success
