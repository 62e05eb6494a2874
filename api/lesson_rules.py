"""The catalog's lesson rules, applied when a dashboard is read (pure logic, no I/O).

docs/api.md § What a student can and cannot claim: of a course's first
completions, only those of lessons its catalog entry lists count (all of them
when it lists none), and at most ``totalLessons`` of them: the earliest, by
(``occurredAt``, ``eventId``). Only counted completions are completed lessons,
earn their 10 points and count as ``lessonsCompleted`` on their local date; a
first completion that does not count still counted its minutes, its day for the
streak and its place in the recent activity (with 0 points).

The worker counts every first completion and writes the dashboard payload
without the catalog; ``rerate`` applies the rules to what was read, with the
catalog entries of the moment, so a catalog change (a list gained, a lesson
removed or added back, a new ``totalLessons``) re-rates every dashboard at its
next read without rewriting any student. The payload carries what that needs
(``CourseRecord.lessons`` and ``quiz_awards``). Nothing changes, and nothing is
copied, when no completion is left out, which is the common case: a course
without a list within its ``totalLessons``.

Records read from the aggregate tables (students not written since the
payload had first completions) carry no lesson ids: for them only the
``completedLessons`` cap applies (their count and times), not the lists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson

from api.payload import ms_to_datetime
from api.records import CatalogEntry, CourseRecord, DayRecord, StudentData, SummaryRecord

LESSON_POINTS = 10
POINTS_PER_LEVEL = 100


def counted(course: CourseRecord, entry: CatalogEntry | None) -> list[tuple[str, int, int]] | None:
    """The first completions of ``course`` that count, as (lesson, at, local date
    ordinal) in (``occurredAt``, ``eventId``) order, or None when all of them do (no
    catalog entry, or one the course stays within: listed lessons, ``totalLessons``)."""
    firsts = course.lessons
    if entry is None or firsts is None:
        return None
    listed = entry.lessons
    if len(firsts) <= entry.total_lessons and (
        listed is None or all(lesson in listed for lesson in firsts)
    ):
        return None
    ordered = sorted(firsts.items(), key=lambda item: (item[1][0], item[1][1]))
    kept = [
        (lesson, at, day)
        for lesson, (at, _event_id, day) in ordered
        if listed is None or lesson in listed
    ]
    return kept[: entry.total_lessons]


def level_times(awards: Iterable[tuple[int, int]]) -> tuple[dt.datetime, ...]:
    """When each level from 2 up was reached, from the (at ms, points) awards."""
    reached: list[dt.datetime] = []
    total = 0
    for at, points in sorted(awards):
        before = total // POINTS_PER_LEVEL
        total += points
        moment = ms_to_datetime(at)
        assert moment is not None
        reached.extend(moment for _ in range(total // POINTS_PER_LEVEL - before))
    return tuple(reached)


def _capped(course: CourseRecord, entry: CatalogEntry | None) -> CourseRecord:
    """A record without lesson ids, its count and times within ``totalLessons``."""
    if entry is None or course.completed_lessons <= entry.total_lessons:
        return course
    total = entry.total_lessons
    times = course.completion_times[:total]
    return course._replace(completed_lessons=total, completion_times=times)


def rerate(data: StudentData) -> StudentData:
    """``data`` with the catalog's lesson rules applied (see the module)."""
    courses: list[CourseRecord] = []
    left_out: dict[tuple[str, str], int] = {}  # (course, lesson) -> its first completion at
    by_day: dict[tuple[int, str], int] = {}  # (local date ordinal, course) -> left out
    changed = False
    for course in data.courses:
        entry = data.live_catalog(course.course_id)
        if course.lessons is None:
            capped = _capped(course, entry)
            changed |= capped is not course
            courses.append(capped)
            continue
        kept = counted(course, entry)
        if kept is None:
            courses.append(course)
            continue
        changed = True
        kept_ids = {lesson for lesson, _, _ in kept}
        for lesson, (at, _event_id, day) in course.lessons.items():
            if lesson not in kept_ids:
                left_out[(course.course_id, lesson)] = at
                key = (day, course.course_id)
                by_day[key] = by_day.get(key, 0) + 1
        courses.append(
            course._replace(
                completed_lessons=len(kept),
                completion_times=tuple(sorted(ms_to_datetime(at) for _, at, _ in kept)),  # type: ignore[type-var]
                lessons={lesson: course.lessons[lesson] for lesson in kept_ids},
            )
        )
    if not changed:
        return data
    if not left_out:  # only records without lesson ids were capped
        return dataclasses.replace(data, courses=tuple(courses))
    return dataclasses.replace(
        data,
        courses=tuple(courses),
        summary=_summary(data.summary, courses, left_out),
        days=tuple(_day(row, by_day) for row in data.days),
    )


def _day(row: DayRecord, by_day: dict[tuple[int, str], int]) -> DayRecord:
    missing = by_day.get((row.local_date.toordinal(), row.course_id))
    if not missing:
        return row
    return row._replace(
        lessons_completed=row.lessons_completed - missing,
        points=row.points - LESSON_POINTS * missing,
    )


def _summary(
    record: SummaryRecord | None,
    courses: list[CourseRecord],
    left_out: dict[tuple[str, str], int],
) -> SummaryRecord | None:
    if record is None:
        return None
    awards: list[tuple[int, int]] = []
    for course in courses:
        awards += [(first[0], LESSON_POINTS) for first in (course.lessons or {}).values()]
        awards += [(at, points) for at, points in course.quiz_awards or ()]
    recent = record.recent_activity
    items = orjson.loads(recent) if isinstance(recent, str) else recent
    return dataclasses.replace(
        record,
        total_points=record.total_points - LESSON_POINTS * len(left_out),
        level_reached_at=level_times(awards),
        recent_activity=[_recent(item, left_out) for item in items],
    )


def _recent(item: dict[str, Any], left_out: dict[tuple[str, str], int]) -> dict[str, Any]:
    """A recent event with 0 points when it is a first completion that does not count."""
    if (
        item.get("type") == "lesson_progress"
        and item.get("pointsAwarded")
        and (item.get("courseId"), item.get("lessonId")) in left_out
    ):
        return {**item, "pointsAwarded": 0}
    return item
