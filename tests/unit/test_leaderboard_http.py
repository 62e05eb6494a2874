"""``/api/leaderboard`` on the real app and the embedded ClickHouse, in a database of its own.

Rankings cover every learner of a database, so each test migrates its own
(``empty_db``). Learners' events go through the worker's rules
(``StudentState``) and rows (``streams.rows``) and are written as the worker
writes them (``ClickHouseSink``: the materialized view of migration 0007 fills
``leaderboard_points`` from that insert). The clock is fixed; expected ranks
and points are worked out by hand from the events.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.main import create_app
from infra.clickhouse import migrate
from infra.settings import Settings
from schemas.events import parse_event
from streams import rows
from streams.sink import ClickHouseSink
from streams.student_state import StudentState
from tests.unit.test_api_http import SECRET, FakePublisher, auth

NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)  # 22:00 on the 25th in New York
_versions = itertools.count(time.time_ns())

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def at(days_ago: float, hour: int = 1) -> str:
    moment = dt.datetime(2026, 11, 26, hour, tzinfo=dt.UTC) - dt.timedelta(days=days_ago)
    return moment.isoformat().replace("+00:00", "Z")


def write_learner(client: Client, student: str, events: list[dict[str, Any]]) -> None:
    """Apply ``events`` with the worker's rules and write the rows it would write."""
    state = StudentState(student)
    for n, event in enumerate(events):
        raw = {"eventId": f"{student}-{n}", "studentId": student, "courseId": "c1", **event}
        parsed = parse_event(orjson.dumps(raw), now=NOW, max_future=dt.timedelta(days=1))
        state.apply(parsed)
    version = next(_versions)
    ClickHouseSink(client).write({
        "student_course_daily": rows.daily_rows(state, version),
        "student_summary": [rows.summary_row(state, NOW, version)],
    })  # fmt: skip


def lesson(days_ago: float, lesson_id: str, course: str = "c1", **extra: Any) -> dict[str, Any]:
    return {"type": "lesson_progress", "occurredAt": at(days_ago), "lessonId": lesson_id,
            "completed": True, "courseId": course, **extra}  # fmt: skip


def quiz(days_ago: float, score: float, course: str = "c2") -> dict[str, Any]:
    return {"type": "quiz_completed", "occurredAt": at(days_ago), "quizId": "q1",
            "score": score, "courseId": course}  # fmt: skip


@pytest.fixture
def db(empty_db: Client) -> Client:
    migrate(empty_db)
    # ann: 20 (c1, today) + 8 (c2, yesterday): week 28, month 28, ever 28
    write_learner(empty_db, "ann", [lesson(0, "l1"), lesson(0, "l2"), quiz(1, 85)])
    # bob: 10 today and 10 twenty days ago, both in c1: week 10, month 20, ever 20
    write_learner(empty_db, "bob", [lesson(0, "l1"), lesson(20, "l2")])
    # cy: a 100 % quiz forty days ago: week 0, month 0, ever 10
    write_learner(empty_db, "cy", [quiz(40, 100)])
    # dee: enrolled only, in New York: never ranked
    write_learner(empty_db, "dee", [
        {"type": "enrolled", "occurredAt": at(2), "timezone": "America/New_York"}
    ])  # fmt: skip
    return empty_db


def make_app(client: Client) -> TestClient:
    settings = Settings(EDUKNIT_JWT_SECRET=SECRET)  # type: ignore[call-arg]
    app = create_app(settings, client, FakePublisher(client, mode="ignore"), clock=lambda: NOW)
    return TestClient(app)


@pytest.fixture
def http(db: Client) -> Iterator[TestClient]:
    yield make_app(db)


def board(http: TestClient, who: str, role: str | None = None, **params: Any) -> Any:
    response = http.get("/api/leaderboard", params={"tz": "UTC", **params}, headers=auth(who, role))
    assert response.status_code == 200, response.text
    return response.json()


def listed(answer: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["name"], e["points"]) for e in answer["entries"]]


def test_periods_and_courses_rank_by_the_points_of_their_dates(http: TestClient) -> None:
    week = board(http, "bob", period="week")
    assert (week["period"], week["courseId"], week["from"], week["to"]) == (
        "week", None, "2026-11-20", "2026-11-26",
    )  # fmt: skip
    assert listed(week) == [(1, "Learner 1", 28), (2, "Learner 2", 10)]
    assert week["ranked"] == 2
    assert week["me"] == {"rank": 2, "points": 10, "percentile": 0.0}
    month = board(http, "bob", period="month")
    assert month["from"] == "2026-10-28"
    assert listed(month) == [(1, "Learner 1", 28), (2, "Learner 2", 20)]
    ever = board(http, "cy", period="all")
    assert ever["from"] is None and ever["to"] == "2026-11-26"
    assert listed(ever) == [(1, "Learner 1", 28), (2, "Learner 2", 20), (3, "Learner 3", 10)]
    assert ever["me"] == {"rank": 3, "points": 10, "percentile": 0.0}
    in_c2 = board(http, "ann", period="all", courseId="c2")
    assert listed(in_c2) == [(1, "Learner 1", 10), (2, "Learner 2", 8)]
    # in c2 cy has 10, ann 8: nobody ranked has fewer than ann
    assert in_c2["me"] == {"rank": 2, "points": 8, "percentile": 0.0}
    assert board(http, "ann", period="week", courseId="c1")["me"] == {
        "rank": 1, "points": 20, "percentile": 50.0,
    }  # fmt: skip
    nobody = board(http, "dee", period="week", courseId="no-such-course")
    assert nobody["entries"] == [] and nobody["ranked"] == 0
    assert nobody["me"] == {"rank": None, "points": 0, "percentile": 0.0}
    assert len(board(http, "ann", period="all", limit=1)["entries"]) == 1


def test_today_is_the_requesters_zone_without_tz(http: TestClient) -> None:
    # dee's latest event is in New York, where it is still the 25th
    response = http.get("/api/leaderboard", params={"period": "week"}, headers=auth("dee"))
    assert response.json()["to"] == "2026-11-25"
    # a requester without events: UTC
    response = http.get("/api/leaderboard", params={"period": "week"}, headers=auth("new"))
    assert response.json()["to"] == "2026-11-26"


def test_a_student_sees_no_other_id_and_no_hidden_name(http: TestClient) -> None:
    assert http.put("/api/leaderboard/me", json={"visible": False, "name": "Secret Ann"},
                    headers=auth("ann")).status_code == 200  # fmt: skip
    answer = board(http, "bob", period="all")
    text = orjson.dumps(answer).decode()
    assert "ann" not in text.lower() and "cy" not in text and "Secret" not in text
    mine = [e for e in answer["entries"] if e["isMe"]]
    assert mine == [{"rank": 2, "name": "Learner 2", "points": 20, "isMe": True,
                     "studentId": "bob"}]  # fmt: skip
    assert all("studentId" not in e for e in answer["entries"] if not e["isMe"])


def test_an_admin_sees_ids(http: TestClient) -> None:
    answer = board(http, "root", "admin", period="all")
    assert [e["studentId"] for e in answer["entries"]] == ["ann", "bob", "cy"]
    assert answer["me"]["rank"] is None
    service = board(http, "svc", "service", period="all")
    assert all("studentId" not in e for e in service["entries"])


def test_a_visible_name_shows_at_once_and_goes_when_hidden(http: TestClient, db: Client) -> None:
    put = http.put("/api/leaderboard/me", json={"visible": True, "name": "  Ann K  "},
                   headers=auth("ann"))  # fmt: skip
    assert put.status_code == 200 and put.json() == {"visible": True, "name": "Ann K"}
    assert listed(board(http, "bob", period="week"))[0] == (1, "Ann K", 28)
    # another process (a restart, another replica) reads it from ClickHouse
    assert listed(board(make_app(db), "cy", period="week"))[0] == (1, "Ann K", 28)
    hidden = http.put("/api/leaderboard/me", json={"visible": False}, headers=auth("ann"))
    assert hidden.json() == {"visible": False, "name": "Ann K"}  # kept, not shown
    assert listed(board(http, "bob", period="week"))[0] == (1, "Learner 1", 28)
    assert "Ann K" not in http.get("/api/leaderboard", params={"period": "all"},
                                   headers=auth("cy")).text  # fmt: skip
    mine = http.get("/api/leaderboard/me", headers=auth("ann"))
    assert mine.json() == {"visible": False, "name": "Ann K"}
    again = http.put("/api/leaderboard/me", json={"visible": True}, headers=auth("ann"))
    assert again.json() == {"visible": True, "name": "Ann K"}  # the stored name
    removed = http.put("/api/leaderboard/me", json={"visible": False, "name": None},
                       headers=auth("ann"))  # fmt: skip
    assert removed.json() == {"visible": False, "name": None}
    assert http.get("/api/leaderboard/me", headers=auth("new")).json() == {
        "visible": False, "name": None,
    }  # fmt: skip


def test_who_may_set_whose_visibility(http: TestClient) -> None:
    body = {"visible": True, "name": "Bee"}
    put = http.put
    assert put("/api/leaderboard/me", params={"studentId": "bob"}, json=body,
               headers=auth("ann")).status_code == 403  # fmt: skip
    assert put("/api/leaderboard/me", params={"studentId": "ann"}, json=body,
               headers=auth("ann")).status_code == 200  # fmt: skip
    moderated = put("/api/leaderboard/me", params={"studentId": "ann"},
                    json={"visible": False}, headers=auth("root", "admin"))  # fmt: skip
    assert moderated.status_code == 200
    assert http.get("/api/leaderboard/me", params={"studentId": "ann"},
                    headers=auth("root", "admin")).json()["visible"] is False  # fmt: skip
    missing = put("/api/leaderboard/me", json=body, headers=auth("svc", "service"))
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "studentId"
    assert put("/api/leaderboard/me", params={"studentId": "bob"}, json=body,
               headers=auth("svc", "service")).status_code == 200  # fmt: skip
    assert http.get("/api/leaderboard/me", params={"studentId": "bob"},
                    headers=auth("ann")).status_code == 403  # fmt: skip
    assert http.get("/api/leaderboard", params={"period": "week"}).status_code == 401
    assert put("/api/leaderboard/me", json=body).status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "period"),
        ("period=year", "period"),
        ("period=WEEK", "period"),
        ("period=week&limit=0", "limit"),
        ("period=week&limit=101", "limit"),
        ("period=week&limit=ten", "limit"),
        ("period=week&courseId=", "courseId"),
        ("period=week&courseId=" + "c" * 129, "courseId"),
        ("period=week&courseId=c%01x", "courseId"),
        ("period=week&tz=Mars%2FOlympus", "tz"),
    ],
)
def test_bad_queries_are_422_naming_the_field(http: TestClient, query: str, field: str) -> None:
    response = http.get(f"/api/leaderboard?{query}", headers=auth("ann"))
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert [p["field"] for p in problems] == [field]
    assert problems[0]["location"] == "query" and problems[0]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"visible": True, "name": ""}, "name"),
        ({"visible": True, "name": "   "}, "name"),
        ({"visible": True, "name": "x" * 41}, "name"),
        ({"visible": True, "name": "Ann\nK"}, "name"),
        ({"visible": True, "name": "Ann\u202eK"}, "name"),
        ({"visible": True, "name": 7}, "name"),
        ({"visible": "yes", "name": "Ann"}, "visible"),
        ({"name": "Ann"}, "visible"),
        ({"visible": True}, "name"),  # no name stored yet
    ],
)
def test_bad_settings_are_422_naming_the_field(
    http: TestClient, body: dict[str, Any], field: str
) -> None:
    response = http.put("/api/leaderboard/me", json=body, headers=auth("cy"))
    assert response.status_code == 422, response.text
    assert [p["field"] for p in response.json()["detail"]] == [field]


def test_names_may_hold_any_letters_and_emoji(http: TestClient) -> None:
    name = "Zoë 👩‍💻 Łódź"  # a zero-width joiner inside the emoji is fine
    response = http.put("/api/leaderboard/me", json={"visible": True, "name": name},
                        headers=auth("cy"))  # fmt: skip
    assert response.status_code == 200 and response.json()["name"] == name
    assert listed(board(http, "ann", period="all"))[2] == (3, name, 10)
    forty = http.put("/api/leaderboard/me", json={"visible": True, "name": "é" * 40},
                     headers=auth("cy"))  # fmt: skip
    assert forty.status_code == 200
