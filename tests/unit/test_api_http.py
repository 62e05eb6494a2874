"""The HTTP layer on the real app (``create_app``) and the session's embedded ClickHouse.

Rows are seeded straight into the tables the worker fills; each test uses its
own student and course ids (``unique_id``). Kafka is replaced by
``FakePublisher``, which records what would be produced and, when asked to,
applies the event the way the worker does (``StudentState`` and
``streams.rows``) so that a POST can see it applied. The clock is fixed.
Expected values are worked out in the tests from the seeded rows.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import time
from collections.abc import Iterator
from typing import Any

import jwt
import orjson
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from fastapi.testclient import TestClient

from api.main import create_app
from eduknit.cli import API_HTTP
from infra.settings import Settings
from schemas.events import parse_event
from streams import rows
from streams.sink import ClickHouseSink
from streams.student_state import StudentState

SECRET = "unit-test-secret-" + "x" * 48
NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)  # 22:00 on the 25th in New York
UTC = dt.UTC
_versions = itertools.count(time.time_ns())

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def token(
    sub: str | None, role: str | None = None, secret: str = SECRET, alg: str = "HS256",
    **claims: Any,
) -> str:  # fmt: skip
    payload: dict[str, Any] = dict(claims)
    if sub is not None:
        payload["sub"] = sub
    if role is not None:
        payload["role"] = role
    return jwt.encode(payload, secret, algorithm=alg)


def auth(sub: str, role: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, role)}"}


def insert(client: Client, table: str, data: list[list[Any]]) -> None:
    """Write rows as the worker does (``streams.rows`` values, the sink's encoding)."""
    ClickHouseSink(client).write({table: data})


class FakePublisher:
    """Records produced events; ``mode`` = apply (like the worker), ignore, or fail."""

    def __init__(self, client: Client, mode: str = "apply") -> None:
        self.client = client
        self.mode = mode
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.states: dict[str, StudentState] = {}
        self.is_ready = True

    async def publish(self, student_id: str, event: dict[str, Any]) -> None:
        self.calls.append((student_id, event))
        if self.mode == "fail":
            raise RuntimeError("broker down")
        if self.mode == "apply":
            self.apply(student_id, event)

    def apply(self, student_id: str, event: dict[str, Any]) -> None:
        parsed = parse_event(orjson.dumps(event), now=NOW, max_future=dt.timedelta(days=1))
        state = self.states.setdefault(student_id, StudentState(student_id))
        version = next(_versions)
        if state.apply(parsed):
            insert(self.client, "student_courses", rows.course_rows(state, NOW, version))
            insert(self.client, "student_course_daily", rows.daily_rows(state, version))
            insert(self.client, "student_summary", [rows.summary_row(state, NOW, version)])
            state.clear_dirty()
        insert(self.client, "learning_events", [rows.event_row(parsed, 0, 0, NOW, version)])

    def ready(self) -> bool:
        return self.is_ready


class DownClient:
    """A ClickHouse client whose server is gone."""

    def query(self, *_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    def command(self, *_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("connection refused")


def make_app(client: Any, publisher: Any, apply_wait: float = 2.0, **env: Any) -> TestClient:
    """The app on ``client`` and ``publisher``; ``env``: more settings by variable name."""
    settings = Settings(EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_APPLY_WAIT_SECONDS=apply_wait, **env)
    return TestClient(create_app(settings, client, publisher, clock=lambda: NOW))


@pytest.fixture
def publisher(ch_client: Client) -> FakePublisher:
    return FakePublisher(ch_client)


@pytest.fixture
def http(ch_client: Client, publisher: FakePublisher) -> Iterator[TestClient]:
    yield make_app(ch_client, publisher)


# ------------------------------------------------------------------- seeding
def iso(moment: dt.datetime) -> str:
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    ms = moment.microsecond // 1000
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


def seed(client: Client, sid: str, p: str) -> dict[str, Any]:
    """A student with four courses, daily rows and a summary; returns what was seeded."""
    v = next(_versions)
    # later inserts hold older versions, so only FINAL gives the right rows
    insert(client, "course_catalog", [[f"{p}B", "Course B", 10, [], 0, 1, NOW, v + 1]])  # tombstone
    insert(client, "course_catalog", [[f"{p}A", "Course A", 4, [], 0, 0, NOW, v],
                                      [f"{p}B", "Course B", 10, [], 0, 0, NOW, v]])  # fmt: skip
    done = [NOW - dt.timedelta(days=10 - i) for i in range(4)]
    courses = {
        # id: enrolled, first_enrolled_at, completed, completion_times, reported,
        #     reported_at, minutes, last_activity
        f"{p}A": [1, NOW - dt.timedelta(days=30), 4, done, None, None, 120.0,
                  NOW - dt.timedelta(hours=1)],
        f"{p}B": [1, NOW - dt.timedelta(days=20), 2, done[:2], 40.0, NOW - dt.timedelta(days=2),
                  30.5, NOW - dt.timedelta(days=2)],
        f"{p}C": [1, NOW - dt.timedelta(days=5), 0, [], None, None, 0.0, None],
        f"{p}D": [0, NOW - dt.timedelta(days=40), 1, done[:1], 70.0, NOW - dt.timedelta(days=9),
                  15.0, NOW - dt.timedelta(minutes=5)],
    }  # fmt: skip
    insert(
        client, "student_courses", [[sid, cid, *vals, NOW, v + 1] for cid, vals in courses.items()]
    )
    insert(client, "student_courses", [  # an older version of A that FINAL must hide
        [sid, f"{p}A", 1, None, 1, done[:1], None, None, 1.0, None, NOW, v]
    ])  # fmt: skip
    local = dt.date(2026, 11, 25)  # "today" in New York at NOW
    daily = [  # date, course, minutes, lessons, completions, quizzes, score sum, points, first at
        # already "tomorrow" for New York: an event stamped in a zone further east
        [local + dt.timedelta(days=1), f"{p}A", 11.0, 0, 1, 0, 0.0, 0, NOW - dt.timedelta(hours=1)],
        [local, f"{p}A", 45.0, 1, 2, 0, 0.0, 10, NOW - dt.timedelta(hours=2)],
        [local, f"{p}B", 7.5, 0, 0, 2, 150.0, 8, None],
        [local - dt.timedelta(days=1), f"{p}A", 20.0, 1, 1, 0, 0.0, 10,
         NOW - dt.timedelta(days=1, hours=3)],
        [local - dt.timedelta(days=2), f"{p}B", 0.0, 0, 1, 0, 0.0, 0,  # a repeat completion
         NOW - dt.timedelta(days=2)],
        [local - dt.timedelta(days=3), f"{p}B", 23.0, 0, 0, 1, 60.0, 0, None],
        [local - dt.timedelta(days=6), f"{p}A", 30.0, 1, 1, 0, 0.0, 10,
         NOW - dt.timedelta(days=6, hours=5)],
        [local - dt.timedelta(days=7), f"{p}A", 99.0, 1, 1, 0, 0.0, 10,
         NOW - dt.timedelta(days=7, hours=5)],
        [local - dt.timedelta(days=40), f"{p}D", 15.0, 1, 1, 0, 0.0, 10, None],
    ]  # fmt: skip
    insert(client, "student_course_daily", [[sid, *row, v] for row in daily])
    insert(client, "student_course_daily", [  # an older version that FINAL must hide
        [sid, local, f"{p}A", 1.0, 0, 0, 0, 0.0, 0, None, v - 1],
    ])  # fmt: skip
    active = sorted({row[0] for row in daily if row[4] > 0})
    recent = [
        {"eventId": f"{p}e{i}", "type": "lesson_progress", "courseId": f"{p}A",
         "lessonId": f"l{i}", "quizId": None, "occurredAt": iso(NOW - dt.timedelta(hours=i)),
         "pointsAwarded": 10}
        for i in range(1, 4)
    ]  # fmt: skip
    level_times = [NOW - dt.timedelta(days=9), NOW - dt.timedelta(days=4),
                   NOW - dt.timedelta(hours=1, minutes=30)]  # fmt: skip
    insert(client, "student_summary", [[
        sid, 318, 4, active, level_times, NOW - dt.timedelta(hours=1), "America/New_York", 12,
        orjson.dumps(recent).decode(), NOW, v,
    ]])  # fmt: skip
    insert(client, "student_summary", [[  # an older version that FINAL must hide
        sid, 5, 1, [], [], NOW - dt.timedelta(days=50), "UTC", 1, "[]", NOW, v - 1,
    ]])  # fmt: skip
    return {"courses": courses, "daily": daily, "active": active, "recent": recent,
            "level_times": level_times, "local_today": local}  # fmt: skip


def expected_days(daily: list[list[Any]], start: dt.date, end: dt.date) -> dict[dt.date, dict]:
    """Per-date sums of the seeded daily rows, computed here (not by the API)."""
    days: dict[dt.date, dict[str, Any]] = {}
    day = start
    while day <= end:
        days[day] = {"minutes": 0.0, "lessons": 0, "quizzes": 0, "scores": 0.0, "points": 0,
                     "active": False}  # fmt: skip
        day += dt.timedelta(days=1)
    for date, _course, minutes, lessons, completions, quizzes, scores, points, _at in daily:
        if date in days:
            acc = days[date]
            acc["minutes"] += minutes
            acc["lessons"] += lessons
            acc["quizzes"] += quizzes
            acc["scores"] += scores
            acc["points"] += points
            acc["active"] = acc["active"] or completions > 0
    return days


# ------------------------------------------------------------------ reading
def test_realtime_field_by_field(http: TestClient, ch_client: Client, unique_id: str) -> None:
    sid, p = f"s-{unique_id}", f"{unique_id}-"
    seeded = seed(ch_client, sid, p)
    response = http.get("/api/dashboard/realtime", headers=auth(sid))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["studentId"] == sid
    assert body["generatedAt"] == iso(NOW)
    courses = seeded["courses"]
    a, b = courses[f"{p}A"], courses[f"{p}B"]
    assert body["courses"] == [
        {"courseId": f"{p}A", "title": "Course A", "completedLessons": 4, "totalLessons": 4,
         "progress": min(100.0, round(100 * 4 / 4, 1)), "status": "completed",
         "timeSpentMinutes": a[6], "lastActivityAt": iso(a[7])},
        {"courseId": f"{p}B", "title": None, "completedLessons": 2, "totalLessons": None,
         "progress": b[4], "status": "active", "timeSpentMinutes": b[6],
         "lastActivityAt": iso(b[7])},
        {"courseId": f"{p}C", "title": None, "completedLessons": 0, "totalLessons": None,
         "progress": 0.0, "status": "active", "timeSpentMinutes": 0.0, "lastActivityAt": None},
    ]  # fmt: skip
    today = seeded["local_today"]  # the zone of the latest event (New York) decides
    days = expected_days(seeded["daily"], today - dt.timedelta(days=6), today)
    assert body["weeklyActivity"] == [
        {"date": day.isoformat(), "day": day.strftime("%a"), "minutes": acc["minutes"],
         "hours": round(acc["minutes"] / 60, 2), "lessonsCompleted": acc["lessons"]}
        for day, acc in days.items()
    ]  # fmt: skip
    active = set(seeded["active"])
    current = 0
    while today - dt.timedelta(days=current) in active:
        current += 1
    longest = max(
        n for n in range(1, len(active) + 1)
        if any(all(day + dt.timedelta(days=i) in active for i in range(n)) for day in active)
    )  # fmt: skip
    assert (current, longest) == (3, 4)  # the day after today counts for the longest run only
    assert body["summary"] == {
        "enrolledCourses": 3, "averageProgress": round((100.0 + b[4] + 0.0) / 3, 1),
        "currentStreak": current, "longestStreak": longest, "totalPoints": 318, "level": 4,
        "pointsToNextLevel": 82,
    }  # fmt: skip
    assert body["recentActivity"] == seeded["recent"]
    levels = seeded["level_times"]
    first_today = min(r[8] for r in seeded["daily"] if r[0] == today and r[8] is not None)
    assert body["notifications"] == [
        {"kind": "level_up", "message": "Reached level 4", "at": iso(levels[2])},
        {"kind": "streak_milestone", "message": "3-day learning streak", "at": iso(first_today)},
        {"kind": "level_up", "message": "Reached level 3", "at": iso(levels[1])},
        {"kind": "course_completed", "message": 'Completed "Course A"', "at": iso(a[3][3])},
        {"kind": "level_up", "message": "Reached level 2", "at": iso(levels[0])},
    ]  # fmt: skip


def test_realtime_tz_param_moves_today(http: TestClient, ch_client: Client, unique_id: str) -> None:
    sid = f"s-{unique_id}"
    seed(ch_client, sid, f"{unique_id}-")
    body = http.get("/api/dashboard/realtime?tz=Asia/Tokyo", headers=auth(sid)).json()
    tokyo_today = NOW.astimezone(dt.timezone(dt.timedelta(hours=9))).date()  # 2026-11-26
    assert body["weeklyActivity"][-1]["date"] == tokyo_today.isoformat()
    assert body["weeklyActivity"][0]["date"] == (tokyo_today - dt.timedelta(days=6)).isoformat()


@pytest.mark.parametrize("days", [7, 60])
def test_statistics_field_by_field(
    http: TestClient, ch_client: Client, unique_id: str, days: int
) -> None:
    sid, p = f"s-{unique_id}", f"{unique_id}-"
    seeded = seed(ch_client, sid, p)
    response = http.get(f"/api/dashboard/statistics?days={days}", headers=auth(sid))
    assert response.status_code == 200, response.text
    body = response.json()
    today = seeded["local_today"]
    start = today - dt.timedelta(days=days - 1)
    per_day = expected_days(seeded["daily"], start, today)
    assert (body["studentId"], body["days"]) == (sid, days)
    assert (body["from"], body["to"]) == (start.isoformat(), today.isoformat())
    assert body["daily"] == [
        {"date": day.isoformat(), "minutes": acc["minutes"], "lessonsCompleted": acc["lessons"],
         "quizzesCompleted": acc["quizzes"], "points": acc["points"]}
        for day, acc in per_day.items()
    ]  # fmt: skip
    minutes = sum(acc["minutes"] for acc in per_day.values())
    quizzes = sum(acc["quizzes"] for acc in per_day.values())
    scores = sum(acc["scores"] for acc in per_day.values())
    assert body["totals"] == {
        "minutes": minutes, "hours": round(minutes / 60, 2),
        "lessonsCompleted": sum(acc["lessons"] for acc in per_day.values()),
        "quizzesCompleted": quizzes,
        "averageQuizScore": round(scores / quizzes, 1) if quizzes else None,
        "activeDays": sum(1 for acc in per_day.values() if acc["active"]),
        "pointsEarned": sum(acc["points"] for acc in per_day.values()),
    }  # fmt: skip
    progress = {f"{p}A": 100.0, f"{p}B": 40.0, f"{p}D": 70.0}  # D: reported, no catalog
    per_course: dict[str, list[float]] = {}
    for date, course, mins, lessons, *_ in seeded["daily"]:
        if start <= date <= today:
            acc = per_course.setdefault(course, [0.0, 0])
            acc[0] += mins
            acc[1] += lessons
    expected = [
        {"courseId": c, "minutes": m, "lessonsCompleted": n, "progress": progress[c]}
        for c, (m, n) in per_course.items()
    ]
    expected.sort(key=lambda x: (-x["minutes"], x["courseId"]))
    assert body["courses"] == expected
    assert (f"{p}D" in per_course) == (days == 60)


def test_unknown_student_is_empty(http: TestClient, unique_id: str) -> None:
    headers = auth(f"nobody-{unique_id}")
    body = http.get("/api/dashboard/realtime", headers=headers).json()
    assert body["courses"] == [] and body["recentActivity"] == [] and body["notifications"] == []
    today = NOW.date()  # no events: UTC
    assert [w["date"] for w in body["weeklyActivity"]] == [
        (today - dt.timedelta(days=6 - i)).isoformat() for i in range(7)
    ]
    assert all(w["minutes"] == 0 and w["lessonsCompleted"] == 0 for w in body["weeklyActivity"])
    assert body["summary"] == {
        "enrolledCourses": 0, "averageProgress": 0.0, "currentStreak": 0, "longestStreak": 0,
        "totalPoints": 0, "level": 1, "pointsToNextLevel": 100,
    }  # fmt: skip
    stats = http.get("/api/dashboard/statistics", headers=headers).json()
    assert len(stats["daily"]) == 30 and stats["courses"] == []
    assert stats["totals"]["averageQuizScore"] is None and stats["totals"]["minutes"] == 0


# --------------------------------------------------------------------- auth
def _alg_none_token(sub: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': sub, 'role': 'admin'})}."


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no-token"),
        pytest.param("Bearer not-a-jwt", id="malformed"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong-scheme"),
        pytest.param(
            f"Bearer {token('s1', secret='another-secret-' + 'y' * 32)}", id="bad-signature"
        ),
        pytest.param(f"Bearer {_alg_none_token('s1')}", id="alg-none"),
        pytest.param(f"Bearer {token('s1', alg='HS512')}", id="alg-hs512"),
        pytest.param(f"Bearer {token('s1', exp=int(time.time()) - 60)}", id="expired"),
        pytest.param(f"Bearer {token(None, role='admin')}", id="no-sub"),
        pytest.param(f"Bearer {token('')}", id="empty-sub"),
    ],
)
@pytest.mark.parametrize("method", ["get-realtime", "get-statistics", "post"])
def test_unauthenticated_is_401(http: TestClient, publisher: FakePublisher, header: str | None,
                                method: str) -> None:  # fmt: skip
    headers = {"Authorization": header} if header else {}
    if method == "post":
        body = {"courseId": "c", "lessonId": "l", "completed": True}
        response = http.post("/api/dashboard/progress/update", headers=headers, json=body)
    else:
        response = http.get(f"/api/dashboard/{method.split('-')[1]}", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert isinstance(response.json()["detail"], str)
    assert publisher.calls == []


def test_valid_token_with_future_exp_is_accepted(http: TestClient) -> None:
    headers = {"Authorization": f"Bearer {token('s1', exp=int(time.time()) + 600)}"}
    assert http.get("/api/dashboard/realtime", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("role", "other", "status"),
    [
        pytest.param(None, False, 200, id="student-own-implicit"),
        pytest.param(None, True, 403, id="student-other"),
        pytest.param("student", True, 403, id="explicit-student-other"),
        pytest.param("admin", True, 200, id="admin-other"),
        pytest.param("service", True, 200, id="service-other"),
        pytest.param("teacher", False, 403, id="unknown-role"),
    ],
)
def test_read_permissions(
    http: TestClient, ch_client: Client, unique_id: str, role: str | None, other: bool, status: int
) -> None:
    target = f"s-{unique_id}"
    seed(ch_client, target, f"{unique_id}-")
    caller = f"caller-{unique_id}" if other else target
    query = f"?studentId={target}" if other else ""
    for path in ("realtime", "statistics"):
        response = http.get(f"/api/dashboard/{path}{query}", headers=auth(caller, role))
        assert response.status_code == status, response.text
        if status == 200:
            assert response.json()["studentId"] == target
            if path == "realtime":
                assert response.json()["summary"]["totalPoints"] == 318


def test_student_may_name_themselves(http: TestClient, unique_id: str) -> None:
    sid = f"s-{unique_id}"
    response = http.get(f"/api/dashboard/realtime?studentId={sid}", headers=auth(sid))
    assert response.status_code == 200 and response.json()["studentId"] == sid


# ------------------------------------------------------------ invalid input
@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("days=0", "days", id="days-0"),
        pytest.param("days=366", "days", id="days-366"),
        pytest.param("days=abc", "days", id="days-abc"),
        pytest.param("days=1.5", "days", id="days-fraction"),
        pytest.param("tz=Not/AZone", "tz", id="tz-unknown"),
        pytest.param("tz=../../etc/passwd", "tz", id="tz-path"),
        pytest.param("tz=%2B02:00", "tz", id="tz-offset-is-not-iana"),
        pytest.param("tz=", "tz", id="tz-empty"),
        pytest.param("studentId=", "studentId", id="student-empty"),
        pytest.param("studentId=" + "x" * 129, "studentId", id="student-too-long"),
    ],
)
def test_statistics_422_names_the_field(http: TestClient, query: str, field: str) -> None:
    response = http.get(f"/api/dashboard/statistics?{query}", headers=auth("s1", "admin"))
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert [p["field"] for p in problems] == [field]
    assert problems[0]["location"] == "query" and problems[0]["message"]


def test_realtime_422_names_tz(http: TestClient) -> None:
    response = http.get("/api/dashboard/realtime?tz=Mars/Olympus", headers=auth("s1"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "tz"
    assert "Mars/Olympus" in response.json()["detail"][0]["message"]


VALID_BODY = {"courseId": "c1", "lessonId": "l1", "completed": True, "timeSpent": 5}


def known(client: Client, *courses: str) -> None:
    """Put ``courses`` in the catalog (a student may only post for catalog courses)."""
    insert(client, "course_catalog", [[c, c, 8, [], 0, 0, NOW, next(_versions)] for c in courses])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"courseId": ""}, "courseId", id="course-empty"),
        pytest.param({"courseId": "c" * 129}, "courseId", id="course-too-long"),
        pytest.param({"courseId": None}, "courseId", id="course-null"),
        pytest.param({"lessonId": 7}, "lessonId", id="lesson-number"),
        pytest.param({"completed": "yes"}, "completed", id="completed-string"),
        pytest.param({"completed": 1}, "completed", id="completed-number"),
        pytest.param({"timeSpent": -1}, "timeSpent", id="time-negative"),
        pytest.param({"timeSpent": 1441}, "timeSpent", id="time-over-a-day"),
        pytest.param({"timeSpent": "5"}, "timeSpent", id="time-string"),
        pytest.param({"eventId": ""}, "eventId", id="event-id-empty"),
        pytest.param({"eventId": "e" * 129}, "eventId", id="event-id-too-long"),
        pytest.param({"moduleId": ""}, "moduleId", id="module-empty"),
        pytest.param({"occurredAt": "2026-11-26T09:00:00"}, "occurredAt", id="occurred-no-offset"),
        pytest.param({"occurredAt": "yesterday"}, "occurredAt", id="occurred-text"),
        pytest.param({"occurredAt": 1795669200}, "occurredAt", id="occurred-unix"),
        pytest.param({"occurredAt": "2026-11-27T03:00:01Z"}, "occurredAt", id="occurred-future"),
        pytest.param({"occurredAt": "1969-12-31T23:59:59Z"}, "occurredAt", id="occurred-pre-1970"),
        pytest.param({"timezone": "Europe/Atlantis"}, "timezone", id="timezone-unknown"),
    ],
)
def test_post_422_names_the_field(
    http: TestClient, publisher: FakePublisher, change: dict[str, Any], field: str
) -> None:
    body = {**VALID_BODY, **change}
    response = http.post("/api/dashboard/progress/update", headers=auth("s1"), json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert [p["field"] for p in problems] == [field]
    assert problems[0]["location"] == "body" and problems[0]["message"]
    assert publisher.calls == []


@pytest.mark.parametrize("missing", ["courseId", "lessonId", "completed"])
def test_post_422_missing_field(http: TestClient, missing: str) -> None:
    body = {k: v for k, v in VALID_BODY.items() if k != missing}
    response = http.post("/api/dashboard/progress/update", headers=auth("s1"), json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == missing


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b"", id="empty"),
    ],
)
def test_post_422_bad_body(http: TestClient, content: bytes) -> None:
    headers = {**auth("s1"), "Content-Type": "application/json"}
    response = http.post("/api/dashboard/progress/update", headers=headers, content=content)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "body"


# ---------------------------------------------------------------- writing
def test_post_applied_returns_course_and_summary(
    http: TestClient, ch_client: Client, publisher: FakePublisher, unique_id: str
) -> None:
    sid, course = f"s-{unique_id}", f"{unique_id}-P"
    insert(ch_client, "course_catalog", [[course, "Purl", 4, [], 0, 0, NOW, next(_versions)]])
    body = {"courseId": course, "lessonId": "l1", "moduleId": "m1", "timeSpent": 12.5,
            "completed": True}  # fmt: skip
    response = http.post("/api/dashboard/progress/update", headers=auth(sid), json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    ((student, event),) = publisher.calls
    assert student == sid
    assert len(event["eventId"]) == 32 and int(event["eventId"], 16) >= 0  # uuid4 hex
    assert event == {
        "eventId": event["eventId"], "type": "lesson_progress", "studentId": sid,
        "courseId": course, "lessonId": "l1", "moduleId": "m1", "completed": True,
        "timeSpent": 12.5, "occurredAt": iso(NOW),
    }  # fmt: skip
    assert answer == {
        "eventId": event["eventId"], "applied": True,
        "course": {"courseId": course, "title": "Purl", "completedLessons": 1, "totalLessons": 4,
                   "progress": round(100 * 1 / 4, 1), "status": "active",
                   "timeSpentMinutes": 12.5, "lastActivityAt": iso(NOW)},
        "summary": {"enrolledCourses": 1, "averageProgress": 25.0, "currentStreak": 1,
                    "longestStreak": 1, "totalPoints": 10, "level": 1, "pointsToNextLevel": 90},
    }  # fmt: skip


def test_post_same_event_id_twice_changes_nothing(
    http: TestClient, publisher: FakePublisher, unique_id: str
) -> None:
    sid = f"s-{unique_id}"
    known(publisher.client, f"{unique_id}-c")
    body = {**VALID_BODY, "courseId": f"{unique_id}-c", "eventId": f"{unique_id}-e1",
            "occurredAt": "2026-11-25T23:30:00-05:00", "timezone": "America/New_York"}  # fmt: skip
    first = http.post("/api/dashboard/progress/update", headers=auth(sid), json=body)
    second = http.post("/api/dashboard/progress/update", headers=auth(sid), json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["eventId"] == f"{unique_id}-e1"
    assert first.json()["summary"]["totalPoints"] == 10
    assert first.json()["course"]["lastActivityAt"] == "2026-11-26T04:30:00Z"
    assert [e["occurredAt"] for _, e in publisher.calls] == ["2026-11-25T23:30:00-05:00"] * 2
    assert publisher.calls[0][1]["timezone"] == "America/New_York"


def test_post_not_applied_in_time_is_202(ch_client: Client, unique_id: str) -> None:
    publisher = FakePublisher(ch_client, mode="ignore")
    http = make_app(ch_client, publisher, apply_wait=0.2)
    known(ch_client, "c1")
    started = time.monotonic()
    response = http.post("/api/dashboard/progress/update", headers=auth(f"s-{unique_id}"),
                         json={**VALID_BODY, "eventId": f"{unique_id}-late"})  # fmt: skip
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 202
    assert response.json() == {"eventId": f"{unique_id}-late", "applied": False}
    assert len(publisher.calls) == 1


def test_post_publisher_failure_is_503(ch_client: Client) -> None:
    http = make_app(ch_client, FakePublisher(ch_client, mode="fail"))
    known(ch_client, "c1")
    response = http.post("/api/dashboard/progress/update", headers=auth("s1"), json=VALID_BODY)
    assert response.status_code == 503
    assert response.json() == {"detail": "event could not be produced"}


@pytest.mark.parametrize(
    ("role", "for_other", "status"),
    [
        pytest.param(None, False, 200, id="student-self"),
        pytest.param(None, True, 403, id="student-for-other"),
        pytest.param("admin", True, 403, id="admin-for-other"),
        pytest.param("service", True, 200, id="service-for-anyone"),
    ],
)
def test_write_permissions(
    http: TestClient, publisher: FakePublisher, unique_id: str, role: str | None,
    for_other: bool, status: int,
) -> None:  # fmt: skip
    target, caller = f"s-{unique_id}", f"caller-{unique_id}" if for_other else f"s-{unique_id}"
    query = f"?studentId={target}" if for_other else ""
    body = {**VALID_BODY, "courseId": f"{unique_id}-c"}
    known(publisher.client, f"{unique_id}-c")
    response = http.post(
        f"/api/dashboard/progress/update{query}", headers=auth(caller, role), json=body
    )
    assert response.status_code == status, response.text
    assert [s for s, _ in publisher.calls] == ([target] if status == 200 else [])
    if status == 200:
        assert publisher.calls[0][1]["studentId"] == target


def test_service_must_name_the_student(http: TestClient, publisher: FakePublisher) -> None:
    response = http.post(
        "/api/dashboard/progress/update", headers=auth("grader", "service"), json=VALID_BODY
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "studentId"
    assert publisher.calls == []


# ------------------------------------------------------ failures and health
def test_clickhouse_down_is_503() -> None:
    http = make_app(DownClient(), FakePublisher(None, mode="ignore"), apply_wait=0.1)  # type: ignore[arg-type]
    for path in ("realtime", "statistics"):
        response = http.get(f"/api/dashboard/{path}", headers=auth("s1"))
        assert response.status_code == 503
        assert "ClickHouse" in response.json()["detail"]
    # A student's claim cannot be checked without ClickHouse; a service's event is produced.
    posted = http.post("/api/dashboard/progress/update", headers=auth("s1"), json=VALID_BODY)
    assert posted.status_code == 503 and "ClickHouse" in posted.json()["detail"]
    posted = http.post(
        "/api/dashboard/progress/update?studentId=s1", headers=auth("svc", "service"),
        json=VALID_BODY,
    )  # fmt: skip
    assert posted.status_code == 202 and posted.json()["applied"] is False
    ready = http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["clickhouse"].startswith("down") and ready.json()["kafka"] == "ok"


class BrokenClient:
    """A client returning rows of the wrong shape: a bug, not bad input."""

    def query(self, *_args: Any, **_kwargs: Any) -> Any:
        return type("Result", (), {"result_rows": [("garbage",)]})()


def test_a_bug_is_500_with_json() -> None:
    app = create_app(Settings(EDUKNIT_JWT_SECRET=SECRET), BrokenClient(), None)  # type: ignore[arg-type]
    http = TestClient(app, raise_server_exceptions=False)
    response = http.get("/api/dashboard/realtime", headers=auth("s1"))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}


def test_health_and_readiness(http: TestClient, publisher: FakePublisher) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "clickhouse": "ok", "kafka": "ok"}
    publisher.is_ready = False
    down = http.get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable" and down.json()["kafka"].startswith("down")


def test_docs_openapi_and_metrics(http: TestClient) -> None:
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/api/dashboard/realtime", "/api/dashboard/statistics", "/api/dashboard/progress/update",
        "/healthz", "/readyz",
    }  # fmt: skip
    schemas = spec["components"]["schemas"]
    assert set(schemas["RealtimeDashboard"]["properties"]) == {
        "studentId", "generatedAt", "courses", "weeklyActivity", "summary", "recentActivity",
        "notifications",
    }  # fmt: skip
    assert "from" in schemas["Statistics"]["properties"]
    assert "pointsToNextLevel" in schemas["Summary"]["properties"]
    http.get("/api/dashboard/realtime", headers=auth("s1"))
    exposition = http.get("/metrics").text
    counted = (
        'eduknit_api_requests_total{method="GET",route="/api/dashboard/realtime",status="200"}'
    )
    assert counted in exposition
    assert "eduknit_api_request_seconds_bucket" in exposition


def test_the_api_is_served_with_the_c_http_parser() -> None:
    """``make run`` and ``make api`` serve with httptools, not h11 (BENCHMARKS.md)."""
    # imported here: without httptools only this test fails, not the module
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    config = uvicorn.Config(app, http=API_HTTP, lifespan="off")
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
