"""Open edX statements end to end: HTTP -> Tansu -> Faust worker -> embedded ClickHouse -> API.

The pipeline runs as ``make run`` runs it (``testkit.stack``) with
an LRS key and secret; real Open edX statements (``../shared/fixtures``) are
posted as Open edX does (HTTP Basic, ``X-Experience-API-Version``; an array by
POST, one statement by PUT) and must show in ``/api/dashboard/realtime`` and
``/statistics``: the enrolment, a completion (10 points), an evaluated score
(``floor(score / 10)`` points), then the unregistration (course gone). Sending
it all again changes nothing. The expected numbers are worked out here from the
statements' fields; the whole dashboards are also compared with the reference
model (``testkit.reference``) fed with events built here from the same fields.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from testkit.compare import check_student, wait_for_match
from testkit.stack import Producer, Stack
from testkit.xapi_fixtures import statements

pytestmark = pytest.mark.integration

KEY, SECRET = "openedx", "lrs-secret-for-the-pipeline-test"
COURSE = "course-v1:edX+DemoX+Demo_Course"  # the fixtures' course, as its key
CATALOG = {COURSE: ("Demonstration Course", 4)}
LRS = {
    "Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode(),
    "X-Experience-API-Version": "1.0.3",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        Path(tmp_path_factory.mktemp("xapi")), EDUKNIT_XAPI_KEY=KEY, EDUKNIT_XAPI_SECRET=SECRET
    ).start()
    try:
        yield running
    finally:
        running.stop()


class Learner:
    """Copies of fixture statements for one new learner, dated in the order of a story.

    The fixtures happened in 2020-2023. The worker accepts past events (only
    events more than 24 h ahead go to the dead-letter topic), but the enrollment rule removes a
    course only when the unregistration is later than every enrolment and
    activity of it, and in the fixtures the completion (2023) and the score
    (2023) are later than the unregistration (2020). So each copy gets a recent
    ``timestamp`` given by the test, a learner of its own and a statement id of
    its own (derived from the fixture's, so re-sending a copy re-sends the id).
    """

    def __init__(self, now: dt.datetime) -> None:
        self.student = f"edx-{uuid.uuid4().hex[:10]}"
        self.now = now
        self.events: list[dict[str, Any]] = []  # what the statements mean, built here

    def statements(self, name: str, hours_ago: float) -> list[dict[str, Any]]:
        copies = copy.deepcopy(statements(name))
        at = (self.now - dt.timedelta(hours=hours_ago)).isoformat()
        for statement in copies:
            statement["actor"]["account"]["name"] = self.student
            statement["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, self.student + statement["id"]))
            statement["timestamp"] = at
        return copies

    def expect(self, statement: dict[str, Any], kind: str, **fields: Any) -> None:
        self.events.append({
            "eventId": statement["id"], "type": kind, "studentId": self.student,
            "courseId": COURSE, "occurredAt": statement["timestamp"], **fields,
        })  # fmt: skip


def _realtime(stack: Stack, student: str) -> dict[str, Any]:
    answer = stack.get("/api/dashboard/realtime", student, tz="UTC")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _totals(stack: Stack, student: str) -> dict[str, Any]:
    answer = stack.get("/api/dashboard/statistics", student, days=7, tz="UTC")
    assert answer.status_code == 200, answer.text
    return answer.json()["totals"]  # type: ignore[no-any-return]


def _wait(stack: Stack, student: str, done: Any, timeout: float = 60.0) -> dict[str, Any]:
    """The /realtime body once ``done(body)`` holds (fails after ``timeout``)."""
    last: dict[str, Any] = {}

    def check() -> list[str]:
        nonlocal last
        last = _realtime(stack, student)
        return [] if done(last) else [f"not yet: {last['summary']} {last['courses']}"]

    wait_for_match(check, timeout=timeout)
    return last


def test_open_edx_statements_reach_the_dashboard(stack: Stack) -> None:
    producer = Producer(stack.bootstrap)
    producer.course(COURSE, *CATALOG[COURSE])
    producer.flush()
    learner = Learner(dt.datetime.now(dt.UTC).replace(microsecond=0))
    url = f"{stack.base_url}/xapi/statements"

    enrol = learner.statements("edx.course.enrollment.activated.json", hours_ago=5)
    block = learner.statements("edx.completion.block_completion.changed.json", hours_ago=4)
    checked = learner.statements("problem_check(server).list_answers.json", hours_ago=3.5)
    video = learner.statements("play_video.json", hours_ago=3.4)  # accepted, not counted
    batch = enrol + block + checked + video
    learner.expect(enrol[0], "enrolled")
    learner.expect(block[0], "lesson_progress", lessonId=block[0]["object"]["id"], completed=True)
    scaled = checked[0]["result"]["score"]["scaled"]
    learner.expect(checked[0], "quiz_completed", quizId=checked[0]["object"]["id"],
                   score=100 * scaled)  # fmt: skip
    answer = httpx.post(url, json=batch, headers=LRS, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [statement["id"] for statement in batch]
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"

    (watched,) = learner.statements("complete_video.json", hours_ago=3)  # PUT, as Open edX does
    minutes, seconds = watched["result"]["duration"].removeprefix("PT").rstrip("S").split("M")
    spent = int(minutes) + int(seconds) / 60  # PT03M15S
    learner.expect(watched, "lesson_progress", lessonId=watched["object"]["id"], completed=True,
                   timeSpent=spent)  # fmt: skip
    put = httpx.put(url, params={"statementId": watched["id"]}, json=watched, headers=LRS,
                    timeout=30)  # fmt: skip
    assert put.status_code == 204, put.text

    quiz_points = math.floor(100 * scaled / 10)  # 0.5 -> 50 % -> 5 points
    points = 2 * 10 + quiz_points
    body = _wait(stack, learner.student, lambda b: b["summary"]["totalPoints"] == points)
    (course,) = body["courses"]
    assert course["courseId"] == COURSE and course["title"] == CATALOG[COURSE][0]
    assert course["completedLessons"] == 2 and course["progress"] == 50.0  # 2 of 4 lessons
    assert course["timeSpentMinutes"] == round(spent, 6)
    assert body["summary"]["enrolledCourses"] == 1
    awarded = {a["eventId"]: a["pointsAwarded"] for a in body["recentActivity"]}
    assert awarded == {enrol[0]["id"]: 0, block[0]["id"]: 10, checked[0]["id"]: quiz_points,
                       watched["id"]: 10}  # fmt: skip
    wait_for_match(lambda: check_student(stack, learner.student, learner.events, CATALOG))

    (leave,) = learner.statements("edx.course.enrollment.deactivated.json", hours_ago=2)
    learner.expect(leave, "unenrolled")
    assert httpx.post(url, json=leave, headers=LRS, timeout=30).json() == [leave["id"]]
    body = _wait(stack, learner.student, lambda b: b["summary"]["enrolledCourses"] == 0)
    assert body["courses"] == [] and body["summary"]["totalPoints"] == points  # history stays
    wait_for_match(lambda: check_student(stack, learner.student, learner.events, CATALOG))
    totals = _totals(stack, learner.student)

    # Everything again (same statement ids), then a sentinel: once it shows, the
    # re-sent statements before it (same key, same partition) were processed too.
    assert httpx.post(url, json=[*batch, leave], headers=LRS, timeout=30).status_code == 200
    again = httpx.put(url, params={"statementId": watched["id"]}, json=watched, headers=LRS,
                      timeout=30)  # fmt: skip
    assert again.status_code == 204
    sentinel = learner.statements("edx.course.enrollment.activated.json", hours_ago=1)[0]
    sentinel["id"] = str(uuid.uuid4())
    sentinel["object"]["id"] = "http://localhost:18000/course/course-v1:edX+Sentinel+1"
    assert httpx.post(url, json=sentinel, headers=LRS, timeout=30).status_code == 200
    body = _wait(stack, learner.student, lambda b: b["summary"]["enrolledCourses"] == 1)
    assert [c["courseId"] for c in body["courses"]] == ["course-v1:edX+Sentinel+1"]
    assert body["summary"]["totalPoints"] == points
    assert _totals(stack, learner.student) == totals  # no minute, lesson or attempt twice
    assert totals["quizzesCompleted"] == 1 and totals["lessonsCompleted"] == 2
    learner.expect(sentinel, "enrolled", courseId="course-v1:edX+Sentinel+1")
    wait_for_match(lambda: check_student(stack, learner.student, learner.events, CATALOG))


def test_a_5_mb_body_is_413_at_the_default_limit(stack: Stack) -> None:
    statement = statements("play_video.json")[0]
    body = orjson.dumps([statement] * 5000)
    assert len(body) > 5 * 1000 * 1000
    answer = httpx.post(f"{stack.base_url}/xapi/statements", content=body, headers=LRS, timeout=30)
    assert answer.status_code == 413 and "4194304" in answer.json()["detail"]
    events = httpx.post(
        f"{stack.base_url}/api/events", content=body, timeout=30,
        headers={"Authorization": f"Bearer {stack.token('svc', role='service')}"},
    )  # fmt: skip
    assert events.status_code == 413
