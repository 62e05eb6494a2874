"""The catalog's lesson rules at read time (``api.lesson_rules``), against the reference.

The worker counts every first completion (as when the lesson list came after the
events); the dashboard payload it writes is decoded, given catalog entries with
and without lists and caps, re-rated, and every field of ``/realtime`` and
``/statistics`` is compared with ``testkit.reference``, which applies the rules
literally while replaying the events. A hand-worked case pins the rules down
and a catalog without lists or caps must leave the records untouched.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import orjson
import pytest

from api import metrics, payload
from api.lesson_rules import rerate
from api.records import CatalogEntry, StudentData
from api.timeutil import local_today, request_zone
from api.views import _realtime
from streams.processor import EventProcessor, Message
from streams.rows import COLUMNS
from testkit.compare import expected_realtime, expected_statistics, realtime_view
from testkit.history import delivery_order, student_history
from tests.unit.test_processor import MemoryStore

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
COURSES = ["c-a", "c-b", "c-c", "c-d"]
PAYLOAD = COLUMNS["student_dashboard"].index("payload")


def _written(events: list[dict[str, Any]], batch: int = 7) -> dict[str, str]:
    """student -> the last dashboard payload the worker wrote for these events."""
    processor = EventProcessor(MemoryStore())
    messages = [
        Message("learning-events", 0, i, e["studentId"].encode(), orjson.dumps(e))
        for i, e in enumerate(events)
    ]
    payloads: dict[str, str] = {}
    for version, start in enumerate(range(0, len(messages), batch), start=1):
        result = processor.process(messages[start : start + batch], NOW, version)
        assert not result.dead_letters
        for row in result.tables["student_dashboard"]:
            payloads[row[0]] = row[PAYLOAD]
    return payloads


def _data(raw: str, catalog: dict[str, tuple[Any, ...]], days: int) -> StudentData:
    since = NOW.date() - dt.timedelta(days=days + 1)
    decoded = payload.decode(raw, since, NOW.date() + dt.timedelta(days=1), all_active_days=True)
    entries = {
        course: CatalogEntry(
            course, title, total, lessons=None if lessons is None else frozenset(lessons)
        )
        for course, (title, total, lessons) in catalog.items()
    }
    return rerate(StudentData(decoded.courses, entries, decoded.summary, decoded.days, 1))


def _answers(student: str, raw: str, catalog: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    realtime, _ = _realtime(student, _data(raw, catalog, 7), None, NOW)
    body = orjson.loads(realtime.model_dump_json(by_alias=True))
    data = _data(raw, catalog, 30)
    zone = data.summary.last_event_tz if data.summary else None
    today = local_today(NOW, request_zone(None, zone))
    stats = orjson.loads(metrics.statistics_body(student, data, today, 30))
    return {"realtime": realtime_view(body), "statistics": stats}


def _catalog(rng: random.Random) -> dict[str, tuple[Any, ...]]:
    """A random catalog: courses absent, capped, listing some lessons (some unknown)."""
    catalog: dict[str, tuple[Any, ...]] = {}
    for course in COURSES:
        kind = rng.choice(["absent", "plain", "listed", "listed"])
        if kind == "absent":
            continue
        total = rng.choice([0, 2, 4, 8, 20])
        lessons = None
        if kind == "listed":
            lessons = sorted(rng.sample([f"l{i}" for i in range(1, 9)], rng.randint(0, 6)))
            lessons += ["l-never-done"] if rng.random() < 0.5 else []
        catalog[course] = (f"Title {course}", total, lessons)
    return catalog


@pytest.mark.parametrize("seed", range(12))
def test_rerated_dashboards_equal_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    histories = {
        f"s{seed}-{i}": student_history(rng, f"s{seed}-{i}", COURSES, NOW, days=25)
        for i in range(4)
    }
    events = [e for h in histories.values() for e in delivery_order(rng, h)]
    rng.shuffle(events)
    payloads = _written(events)
    for student, history in histories.items():
        catalog = _catalog(rng)
        got = _answers(student, payloads[student], catalog)
        want = expected_realtime(student, history, catalog, NOW)
        assert got["realtime"] == want, (student, catalog)
        want_stats = expected_statistics(student, history, catalog, NOW, 30)
        for key, value in want_stats.items():
            assert got["statistics"][key] == value, (student, key, catalog)


def _lesson(eid: str, lesson: str, at: str, **more: Any) -> dict[str, Any]:
    return {
        "eventId": eid, "type": "lesson_progress", "studentId": "s-hand", "courseId": "c",
        "lessonId": lesson, "completed": True, "timeSpent": 10, "occurredAt": at, **more,
    }  # fmt: skip


def test_hand_worked_list_and_cap() -> None:
    events = [
        _lesson("e1", "l1", "2026-11-20T10:00:00Z"),
        _lesson("e2", "l-fake", "2026-11-20T11:00:00Z"),  # not listed
        _lesson("e3", "l2", "2026-11-21T10:00:00Z"),
        _lesson("e4", "l3", "2026-11-22T10:00:00Z"),  # listed, beyond totalLessons = 2
        _lesson("e5", "l-fake", "2026-11-23T10:00:00Z"),  # a repeat: its day is active
    ]
    raw = _written(events)["s-hand"]
    catalog: dict[str, tuple[Any, ...]] = {"c": ("Course", 2, ["l1", "l2", "l3"])}
    got = _answers("s-hand", raw, catalog)["realtime"]
    course = got["courses"]["c"]
    # l1 and l2 count (l-fake is not listed; l3 would be the third of 2 lessons).
    assert (course["completedLessons"], course["totalLessons"], course["progress"]) == (2, 2, 100)
    assert course["timeSpentMinutes"] == 50.0  # every event's minutes count
    assert got["summary"]["totalPoints"] == 20 and got["summary"]["level"] == 1
    assert got["summary"]["longestStreak"] == 4  # 20th-23rd: every day had a completion
    points = {item["eventId"]: item["pointsAwarded"] for item in got["recentActivity"]}
    assert points == {"e1": 10, "e2": 0, "e3": 10, "e4": 0, "e5": 0}
    by_date = {day["date"]: day["lessonsCompleted"] for day in got["weeklyActivity"]}
    assert by_date["2026-11-20"] == 1 and by_date["2026-11-21"] == 1
    assert by_date["2026-11-22"] == 0 and by_date["2026-11-23"] == 0
    assert [n["kind"] for n in got["notifications"]] == ["streak_milestone", "course_completed"]

    # The list gains l-fake and totalLessons grows: both count again, without any rewrite.
    wider: dict[str, tuple[Any, ...]] = {"c": ("Course", 4, ["l1", "l2", "l3", "l-fake"])}
    again = _answers("s-hand", raw, wider)["realtime"]
    assert again["courses"]["c"]["completedLessons"] == 4
    assert again["summary"]["totalPoints"] == 40


def test_without_lists_or_caps_nothing_is_copied() -> None:
    raw = _written([_lesson("e1", "l1", "2026-11-20T10:00:00Z")])["s-hand"]
    decoded = payload.decode(raw, NOW.date(), NOW.date())
    for catalog in ({}, {"c": CatalogEntry("c", "Course", 3)}):
        data = StudentData(decoded.courses, catalog, decoded.summary, decoded.days, 1)
        assert rerate(data) is data


def test_records_without_lesson_ids_are_only_capped() -> None:
    decoded = payload.decode(
        orjson.dumps([30, [], [], "+00:00", [], [["c", 1, 0, 5, [1, 2, 3, 4, 5], None, None, 0,
                                                  5]], []]),
        NOW.date(), NOW.date(),
    )  # fmt: skip
    data = StudentData(decoded.courses, {"c": CatalogEntry("c", "T", 3, lessons=frozenset())})
    course = rerate(data).courses[0]
    assert course.completed_lessons == 3 and len(course.completion_times) == 3
