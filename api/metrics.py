"""The dashboard's read-time derivations (docs/api.md § Metric rules), as pure functions.

Input: the records of one student (``api.records``) and the request's "today".
Output: the response models of ``api.models`` (/statistics also as its body,
``statistics_body``, written from the same wire form). Nothing here does I/O or
reads the clock, so every rule is unit-tested with a fixed "today".

Rounding is Python's ``round`` (the contract's formulas; an exact half goes to the
even digit). Percentages, averages and scores have 1 decimal, hours 2. Minutes
and scores are added in millionths like the worker does (``exact_sum``), so a
total does not depend on the order of its parts (float addition does).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson

from api.models import (
    CourseProgress,
    DayActivity,
    RecentActivity,
    Statistics,
    Summary,
)
from api.records import CatalogEntry, CourseRecord, DayRecord, StudentData, SummaryRecord
from api.timeutil import iso_or_none, weekday_name
from schemas.units import from_micro, to_micro

POINTS_PER_LEVEL = 100
WEEK_DAYS = 7
RECENT_LIMIT = 10
ONE_DAY = dt.timedelta(days=1)


def exact_sum(values: Iterable[float]) -> float:
    """The sum of minute or score values, exact to a millionth and order-independent."""
    return from_micro(sum(to_micro(v) for v in values))


# ------------------------------------------------------------------ courses
def course_progress(course: CourseRecord, entry: CatalogEntry | None) -> float:
    """Course progress (docs/api.md § Metric rules): catalog ratio when the catalog
    knows the course, else reported, else 0."""
    if entry is not None and not entry.deleted and entry.total_lessons > 0:
        ratio = 100.0 * course.completed_lessons / entry.total_lessons
        return min(100.0, round(ratio, 1))
    if course.reported_progress is not None:
        return float(course.reported_progress)
    return 0.0


def course_view(course: CourseRecord, entry: CatalogEntry | None) -> CourseProgress:
    """One course as the dashboard shows it (title/totalLessons null without catalog)."""
    live = entry if entry is not None and not entry.deleted else None
    progress = course_progress(course, live)
    return CourseProgress(
        course_id=course.course_id,
        title=live.title if live else None,
        completed_lessons=course.completed_lessons,
        total_lessons=live.total_lessons if live else None,
        progress=progress,
        status="completed" if progress >= 100.0 else "active",
        time_spent_minutes=float(course.time_spent_minutes),
        last_activity_at=iso_or_none(course.last_activity_at),
    )


def _course_order(course: CourseRecord) -> tuple[int, float, int, float, str]:
    last = course.last_activity_at
    first = course.first_enrolled_at
    return (
        0 if last is not None else 1,
        -last.timestamp() if last is not None else 0.0,
        0 if first is not None else 1,
        -first.timestamp() if first is not None else 0.0,
        course.course_id,
    )


def enrolled_courses(data: StudentData) -> list[CourseRecord]:
    """Enrolled courses, last activity newest first (none last), then newest enrollment, id."""
    return sorted((c for c in data.courses if c.enrolled), key=_course_order)


def course_list(data: StudentData) -> list[CourseProgress]:
    """The ``courses`` of the realtime dashboard."""
    return [course_view(c, data.live_catalog(c.course_id)) for c in enrolled_courses(data)]


# ------------------------------------------------------------------ streaks
def current_streak(active_days: Iterable[dt.date], today: dt.date) -> int:
    """Run of consecutive active days ending today, or yesterday when today has none.

    Active days after today (possible when events came from zones further east)
    are never reached counting back from today, so they do not count.
    """
    days = set(active_days)
    day = today if today in days else today - ONE_DAY
    length = 0
    while day in days:
        length += 1
        day -= ONE_DAY
    return length


def longest_streak(active_days: Iterable[dt.date]) -> int:
    """The longest run of consecutive active days ever."""
    longest = run = 0
    previous: dt.date | None = None
    for day in sorted(set(active_days)):
        run = run + 1 if previous is not None and day - previous == ONE_DAY else 1
        longest = max(longest, run)
        previous = day
    return longest


# ------------------------------------------------------------------- points
def level_of(points: int) -> tuple[int, int]:
    """docs/api.md § Metric rules: (level, pointsToNextLevel)."""
    return points // POINTS_PER_LEVEL + 1, POINTS_PER_LEVEL - points % POINTS_PER_LEVEL


def summary_of(
    courses: list[CourseProgress], record: SummaryRecord | None, today: dt.date
) -> Summary:
    """The ``summary`` block, from the enrolled courses (``course_list``) and the summary row."""
    progresses = [c.progress for c in courses]
    record = record or SummaryRecord()
    level, to_next = level_of(record.total_points)
    current = current_streak(record.active_days, today)
    return Summary(
        enrolled_courses=len(progresses),
        average_progress=round(exact_sum(progresses) / len(progresses), 1) if progresses else 0.0,
        current_streak=current,
        longest_streak=max(current, longest_streak(record.active_days)),
        total_points=record.total_points,
        level=level,
        points_to_next_level=to_next,
    )


def recent_activity(record: SummaryRecord | None) -> list[RecentActivity]:
    """The worker's newest-first list of recent events (at most 10)."""
    if record is None:
        return []
    items = record.recent_activity
    if isinstance(items, str):
        items = orjson.loads(items)
    return [RecentActivity.model_validate(item) for item in items[:RECENT_LIMIT]]


# ----------------------------------------------------------------- by date
def _per_date(
    days: Iterable[DayRecord], start: dt.date, end: dt.date
) -> dict[dt.date, list[DayRecord]]:
    grouped: dict[dt.date, list[DayRecord]] = {}
    for row in days:
        if start <= row.local_date <= end:
            grouped.setdefault(row.local_date, []).append(row)
    return grouped


def weekly_activity(days: Iterable[DayRecord], today: dt.date) -> list[DayActivity]:
    """Exactly 7 entries, today-6 .. today, oldest first."""
    start = today - (WEEK_DAYS - 1) * ONE_DAY
    grouped = _per_date(days, start, today)
    week: list[DayActivity] = []
    for offset in range(WEEK_DAYS):
        day = start + offset * ONE_DAY
        rows = grouped.get(day, [])
        minutes = exact_sum(r.minutes for r in rows)
        week.append(
            DayActivity(
                date=day,
                day=weekday_name(day),
                minutes=minutes,
                hours=round(minutes / 60, 2),
                lessons_completed=sum(r.lessons_completed for r in rows),
            )
        )
    return week


def statistics(student_id: str, data: StudentData, today: dt.date, days: int) -> Statistics:
    """``GET /statistics`` as its model (``statistics_wire`` validated)."""
    return Statistics.model_validate(statistics_wire(student_id, data, today, days))


def statistics_body(student_id: str, data: StudentData, today: dt.date, days: int) -> bytes:
    """``GET /statistics`` as the JSON the route answers: ``statistics_wire`` written by
    orjson, byte for byte what the model would write (tests/unit/test_api_metrics.py
    checks both on random data), without building the model: a 365-day answer was
    ~0.42 of its ~0.88 ms in validating and writing 365 models (BENCHMARKS.md,
    § Reads)."""
    return orjson.dumps(statistics_wire(student_id, data, today, days))


def statistics_wire(
    student_id: str, data: StudentData, today: dt.date, days: int
) -> dict[str, Any]:
    """``days`` local dates ending today, zero-filled, in the wire form of ``Statistics``
    (camelCase keys in the model's order, floats where the model has floats).

    One pass over the period's rows sums each date and the totals (minutes and
    scores in exact millionths).
    """
    start = today - (days - 1) * ONE_DAY
    grouped = _per_date(data.days, start, today)
    per_day: dict[dt.date, dict[str, Any]] = {}
    minutes = score_sum = lessons = quizzes = points = active = 0
    for day, rows in grouped.items():
        day_minutes = day_lessons = day_quizzes = day_points = completions = 0
        for r in rows:
            day_minutes += to_micro(r.minutes)
            day_lessons += r.lessons_completed
            day_quizzes += r.quizzes_completed
            day_points += r.points
            completions += r.completions
            score_sum += to_micro(r.quiz_score_sum)
        per_day[day] = {
            "date": day, "minutes": from_micro(day_minutes), "lessonsCompleted": day_lessons,
            "quizzesCompleted": day_quizzes, "points": day_points,
        }  # fmt: skip
        minutes += day_minutes
        lessons += day_lessons
        quizzes += day_quizzes
        points += day_points
        active += completions > 0
    get = per_day.get
    daily = [
        get(day)
        or {"date": day, "minutes": 0.0, "lessonsCompleted": 0, "quizzesCompleted": 0, "points": 0}
        for day in _period_dates(start, days)
    ]
    total_minutes = from_micro(minutes)
    scores = from_micro(score_sum)
    totals = {
        "minutes": total_minutes, "hours": round(total_minutes / 60, 2),
        "lessonsCompleted": lessons, "quizzesCompleted": quizzes,
        "averageQuizScore": round(scores / quizzes, 1) if quizzes else None,
        "activeDays": active, "pointsEarned": points,
    }  # fmt: skip
    rows_in_period = [r for rows in grouped.values() for r in rows]
    return {
        "studentId": student_id, "days": days, "from": start, "to": today, "totals": totals,
        "daily": daily, "courses": _period_courses(data, rows_in_period),
    }  # fmt: skip


@lru_cache(maxsize=64)
def _period_dates(start: dt.date, days: int) -> tuple[dt.date, ...]:
    """The ``days`` dates from ``start`` (the same few periods are asked for all day)."""
    return tuple(start + offset * ONE_DAY for offset in range(days))


def _period_courses(data: StudentData, rows: list[DayRecord]) -> list[dict[str, Any]]:
    per_course: dict[str, list[int]] = {}  # course -> [millionths of minutes, lessons]
    for row in rows:
        acc = per_course.setdefault(row.course_id, [0, 0])
        acc[0] += to_micro(row.minutes)
        acc[1] += row.lessons_completed
    records = {c.course_id: c for c in data.courses}
    result = []
    for course_id, (minutes, lessons) in per_course.items():
        record = records.get(course_id)
        progress = course_progress(record, data.live_catalog(course_id)) if record else 0.0
        result.append({
            "courseId": course_id, "minutes": from_micro(minutes),
            "lessonsCompleted": lessons, "progress": progress,
        })  # fmt: skip
    result.sort(key=lambda c: (-c["minutes"], c["courseId"]))
    return result
