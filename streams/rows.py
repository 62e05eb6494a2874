"""Turn student states and events into ClickHouse rows (pure logic).

Each function returns complete rows for one table, in the column order of
``COLUMNS``. Rows are whole replacements keyed by their natural key and carry the
flush ``version``, so writing the same rows twice (a replay) changes nothing.

Times go into rows as epoch seconds with the milliseconds as decimals
(``seconds``), which ClickHouse reads into ``DateTime64(3)`` exactly: an aware
``datetime`` cost ~0.5 µs to make and ~0.25 more for orjson to write, and an
event's rows hold about a dozen times.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from schemas.events import ParsedEvent
from schemas.time_format import iso_ms
from schemas.units import from_micro
from streams.student_state import LESSON_POINTS, DayFacts, StudentState, day_of, quiz_awards

Row = list[Any]

COLUMNS: dict[str, list[str]] = {
    "learning_events": [
        "event_id", "student_id", "type", "course_id", "module_id", "lesson_id", "quiz_id",
        "occurred_at", "local_date", "timezone", "completed", "time_spent_minutes",
        "progress", "score", "kafka_partition", "kafka_offset", "ingested_at", "batch_version",
    ],
    "student_courses": [
        "student_id", "course_id", "enrolled", "first_enrolled_at", "completed_lessons",
        "completion_times", "reported_progress", "reported_progress_at", "time_spent_minutes",
        "last_activity_at", "updated_at", "version",
    ],
    "student_course_daily": [
        "student_id", "local_date", "course_id", "minutes", "lessons_completed", "completions",
        "quizzes_completed", "quiz_score_sum", "points", "first_completion_at", "version",
    ],
    "student_summary": [
        "student_id", "total_points", "level", "active_days", "level_reached_at",
        "last_event_at", "last_event_tz", "events_counted", "recent_activity", "updated_at",
        "version",
    ],
    "student_state": ["student_id", "kafka_partition", "state", "version"],
    "student_dashboard": ["student_id", "payload", "version"],
    "course_catalog": [
        "course_id", "title", "total_lessons", "lessons", "lessons_listed", "deleted",
        "updated_at", "version",
    ],
    "dead_letters": [
        "received_at", "topic", "kafka_partition", "kafka_offset", "message_key", "reason",
        "field", "payload",
    ],
}  # fmt: skip


def seconds(ms: int | None) -> float | None:
    """Epoch milliseconds as a ``DateTime64(3)`` value of a row (None stays None).

    orjson writes a float as the shortest text that reads back as the same float,
    and for ``ms / 1000`` that text is the milliseconds' own decimals, so
    ClickHouse stores exactly ``ms``.
    """
    return None if ms is None else ms / 1000


def event_row(
    parsed: ParsedEvent, partition: int, offset: int, now: dt.datetime, version: int
) -> Row:
    """The ``learning_events`` row of a counted event."""
    e = parsed.event
    return [
        e.event_id, e.student_id, e.type, e.course_id, e.module_id, e.lesson_id, e.quiz_id,
        parsed.occurred_ms / 1000, parsed.local_date, parsed.zone_label,
        1 if e.completed else 0, e.time_spent, e.progress, e.score, partition, offset,
        now.timestamp(), version,
    ]  # fmt: skip


def _course_values(state: StudentState, course_id: str) -> list[Any]:
    """A course's ``student_courses`` values (times as epoch ms), after its id, then
    the two the dashboard payload adds.

    enrolled, first enrolled at, completed lessons, completion times, reported
    progress, reported at, minutes, last activity at; then the first completions
    as ``{lesson: [at, event id, local date ordinal]}`` and the quiz awards as
    ``[at, points]``: what the API needs to apply the catalog's lesson rules when it
    reads (docs/architecture.md § Catalog lessons at read time). The first
    completions are the state's own dict, which orjson writes in C: sorting and
    copying them here cost ~6 µs per changed student (BENCHMARKS.md,
    § Worker hot path: the lesson rules and id checks).
    """
    c = state.courses[course_id]
    lessons = c.lessons
    awards = (
        sorted(
            [attempt.at, points]
            for attempts in c.quizzes.values()
            for attempt, points in zip(attempts, quiz_awards(attempts), strict=True)
            if points
        )
        if c.quizzes
        else []
    )
    return [
        1 if c.enrolled else 0, c.first_enrolled_at, len(lessons),
        sorted([at for at, _, _ in lessons.values()]),
        c.progress[2] if c.progress else None, c.progress[0] if c.progress else None,
        from_micro(c.minutes), c.last_activity_at, lessons, awards,
    ]  # fmt: skip


def _day_values(state: StudentState, day: int, course_id: str, facts: DayFacts) -> list[Any]:
    """A (date, course)'s ``student_course_daily`` values (time as epoch ms), after the key.

    minutes, first completions, completions, quizzes, quiz score sum, points,
    first completion at.
    """
    lessons, points = state.points_by_day(course_id).get(day, (0, 0))
    return [
        from_micro(facts.minutes), lessons, facts.completions, facts.quizzes,
        from_micro(facts.score_sum), points, facts.first_completion_at,
    ]  # fmt: skip


def level_reached(timeline: list[tuple[int, str, int]]) -> list[int]:
    """When each level from 2 up was reached, from the points timeline."""
    reached: list[int] = []
    total = 0
    for at, _, points in timeline:
        before = total // 100
        total += points
        reached.extend(at for _ in range(total // 100 - before))
    return reached


def recent_activity(state: StudentState) -> list[dict[str, Any]]:
    """The 10 newest events, newest first, with the points each earned now."""
    award = state.award
    return [
        {
            "eventId": event_id, "type": kind, "courseId": course_id, "lessonId": lesson_id,
            "quizId": quiz_id, "occurredAt": occurred_at,
            "pointsAwarded": award(kind, course_id, lesson_id, quiz_id, event_id),
        }
        for _, event_id, kind, course_id, lesson_id, quiz_id, occurred_at in state.recent
    ]  # fmt: skip


def _points_and_levels(state: StudentState) -> tuple[int, list[int]]:
    """Total points and when each level from 2 up was reached: the timeline of every
    award is built only once there is a level to date (most states have none)."""
    total = state.total_points()
    return total, level_reached(state.points_timeline()) if total >= 100 else []


def _recent_json(state: StudentState) -> bytes:
    return state.cached("recent", lambda: orjson.dumps(recent_activity(state)))


# The API needs daily rows of the last DASHBOARD_DAYS days (statistics go back
# 365 days from the learner's today, which is within a day of the UTC date), and
# of every active day whenever it was (streak-milestone notifications).
DASHBOARD_DAYS = 372


@lru_cache(maxsize=1 << 12)
def iso_day(ordinal: int) -> str:
    """``YYYY-MM-DD`` of a stored date ordinal."""
    return day_of(ordinal).isoformat()


ANY_NOW = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # for rows that do not depend on it


class StudentRows(NamedTuple):
    """The rows one changed state rewrites."""

    courses: list[Row]  # student_courses: the courses changed since the last flush
    days: list[Row]  # student_course_daily: the (date, course) pairs changed since then
    summary: Row  # student_summary
    dashboard: Row  # student_dashboard


def student_rows(state: StudentState, now: dt.datetime, version: int) -> StudentRows:
    """Every row a changed state rewrites, each course's and day's values computed once.

    The dashboard payload holds every course and the days of the last
    ``DASHBOARD_DAYS`` (and every day with a completion); the analyst tables get
    the changed ones, from the same values.

    ``payload`` is ``[total points, active days, level-reached times, zone of the
    latest event, recent activity, courses, days]`` with times as epoch
    milliseconds and dates as ``YYYY-MM-DD``; a course is ``[id, enrolled, first
    enrolled at, completed lessons, completion times, reported progress, reported
    at, minutes, last activity at, first completions, quiz awards]`` (the last two
    as ``_course_values`` says) and a day ``[date, course, minutes, first
    completions, completions, quizzes, quiz score sum, points, first completion at]``
    (the columns of ``student_courses`` and ``student_course_daily``). The API
    decodes it in ``api.store``; ``bench.load_reads`` builds the same shape in SQL.
    """
    student_id = state.student_id
    now_s = now.timestamp()
    total, levels = state.cached("levels", lambda: _points_and_levels(state))
    latest = state.latest or (0, "", "+00:00")
    recent = _recent_json(state)
    active_days = sorted(state.active_days)

    course_values = {cid: _course_values(state, cid) for cid in sorted(state.courses)}
    course_rows: list[Row] = []
    for course_id in sorted(state.dirty_courses or ()):
        enrolled, first, lessons, times, progress, progress_at, minutes, last = course_values[
            course_id
        ][:8]
        course_rows.append([
            student_id, course_id, enrolled, seconds(first), lessons,
            [at / 1000 for at in times], progress, seconds(progress_at),
            minutes, seconds(last), now_s, version,
        ])  # fmt: skip

    oldest = now.date().toordinal() - DASHBOARD_DAYS
    dirty_days = state.dirty_days or frozenset()
    shown: list[Row] = []
    changed: dict[tuple[int, str], list[Any]] = {}
    for key, facts in sorted(state.days.items()):
        day, course_id = key
        if day >= oldest or facts.completions:
            values = _day_values(state, day, course_id, facts)
            shown.append([iso_day(day), course_id, *values])
            if key in dirty_days:
                changed[key] = values
    day_rows: list[Row] = []
    for key in sorted(dirty_days):
        facts = state.days.get(key)
        if facts is None:
            continue
        day, course_id = key
        values = changed.get(key) or _day_values(state, day, course_id, facts)
        day_rows.append([
            student_id, day_of(day), course_id, *values[:-1], seconds(values[-1]), version
        ])  # fmt: skip

    summary = [
        student_id, total, total // 100 + 1, [day_of(day) for day in active_days],
        [at / 1000 for at in levels], latest[0] / 1000, latest[2],
        state.events_counted, recent.decode(), now_s, version,
    ]  # fmt: skip
    payload = orjson.dumps(
        [
            total, [iso_day(day) for day in active_days], levels, latest[2],
            orjson.Fragment(recent), [[cid, *values] for cid, values in course_values.items()],
            shown,
        ],
        option=orjson.OPT_SORT_KEYS,  # the first completions: the same text in every order
    )  # fmt: skip
    return StudentRows(course_rows, day_rows, summary, [student_id, payload.decode(), version])


def course_rows(state: StudentState, now: dt.datetime, version: int) -> list[Row]:
    """``student_courses`` rows of the courses changed since the last flush."""
    return student_rows(state, now, version).courses


def daily_rows(state: StudentState, version: int) -> list[Row]:
    """``student_course_daily`` rows of the (date, course) pairs changed since the last flush
    (they do not depend on the time of the flush: any ``now`` gives the same rows)."""
    return student_rows(state, ANY_NOW, version).days


def summary_row(state: StudentState, now: dt.datetime, version: int) -> Row:
    """The ``student_summary`` row of a student."""
    return student_rows(state, now, version).summary


def dashboard_row(state: StudentState, now: dt.datetime, version: int) -> Row:
    """The ``student_dashboard`` row: everything the API reads for one student, as JSON
    (its shape: ``student_rows``)."""
    return student_rows(state, now, version).dashboard


def state_row(state: StudentState, version: int) -> Row:
    """The ``student_state`` row (the whole state, for restarts)."""
    state.version = version
    return [state.student_id, state.partition, orjson.dumps(state.to_dict()).decode(), version]


def packed_state_row(state: StudentState, text: bytes, version: int) -> Row:
    """``state_row`` from the state's ``to_dict`` JSON ``text`` taken since it last changed.

    The row's text is that JSON with ``"v"`` set to ``version``: ``to_dict`` puts
    it last and it is an integer, so it is the text after the last ``,"v":``.
    """
    state.version = version
    text = text[: text.rindex(b',"v":')] + b',"v":%d}' % version
    return [state.student_id, state.partition, text.decode(), version]


__all__ = [
    "COLUMNS",
    "LESSON_POINTS",
    "course_rows",
    "daily_rows",
    "dashboard_row",
    "event_row",
    "iso_ms",
    "packed_state_row",
    "recent_activity",
    "seconds",
    "state_row",
    "student_rows",
    "summary_row",
]
