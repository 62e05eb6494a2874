"""Dashboard notifications, derived at read time from the stored aggregates.

docs/api.md only names the kinds; the rules chosen here:

- ``level_up``: one per level reached, "Reached level N", ``at`` = when the
  points total first reached the level (``student_summary.level_reached_at``).
- ``streak_milestone``: whenever a run of consecutive active days reaches 3, 7,
  14, 30, 60, 100 or 365 days (every run counts, so a streak rebuilt after a
  break earns its milestones again), "N-day learning streak", ``at`` = the
  first lesson completion of the milestone day (the earliest
  ``first_completion_at`` of that date); when unknown, local midnight of that
  day in the request's zone.
- ``course_completed``: one per enrolled course whose progress is 100,
  'Completed "Title"' (or the course id without a catalog title). ``at`` = the
  first completion that reached the catalog's lesson count when the catalog
  decides the progress, else when the 100 % progress was reported, else the
  course's last activity.

Newest first (ties by kind, then message), at most 10; ``at`` is RFC 3339 UTC.
Nothing is stored: a notification disappears when its cause does (e.g. a
course no longer complete after a catalog update).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from api.metrics import ONE_DAY, course_progress
from api.models import Notification
from api.records import CatalogEntry, CourseRecord, DayRecord, StudentData
from api.timeutil import iso_utc, local_midnight

STREAK_MILESTONES = (3, 7, 14, 30, 60, 100, 365)
LIMIT = 10

_MILESTONE_SET = frozenset(STREAK_MILESTONES)


def streak_milestones(active_days: Iterable[dt.date]) -> list[tuple[dt.date, int]]:
    """(day, run length) for each day on which a run reached a milestone, oldest first."""
    reached: list[tuple[dt.date, int]] = []
    run = 0
    previous: dt.date | None = None
    for day in sorted(set(active_days)):
        run = run + 1 if previous is not None and day - previous == ONE_DAY else 1
        if run in _MILESTONE_SET:
            reached.append((day, run))
        previous = day
    return reached


def first_completion_by_date(days: Iterable[DayRecord]) -> dict[dt.date, dt.datetime]:
    """The earliest first-completion instant of each local date, across courses."""
    result: dict[dt.date, dt.datetime] = {}
    for row in days:
        at = row.first_completion_at
        if at is None:
            continue
        known = result.get(row.local_date)
        if known is None or at < known:
            result[row.local_date] = at
    return result


def completed_at(course: CourseRecord, entry: CatalogEntry | None) -> dt.datetime | None:
    """When the course reached 100 % (see the module rules); None when unknown."""
    if entry is not None and not entry.deleted and entry.total_lessons > 0:
        times = course.completion_times
        if len(times) >= entry.total_lessons:
            return times[entry.total_lessons - 1]
        if times:
            return times[-1]
    return course.reported_progress_at or course.last_activity_at


def notifications(data: StudentData, zone: dt.tzinfo, limit: int = LIMIT) -> list[Notification]:
    """The student's notifications, newest first, at most ``limit``."""
    found: list[tuple[dt.datetime, str, str]] = []
    record = data.summary
    if record is not None:
        for index, at in enumerate(record.level_reached_at):
            found.append((at, "level_up", f"Reached level {index + 2}"))
        if record.active_days:
            firsts = first_completion_by_date(data.days)
            for day, length in streak_milestones(record.active_days):
                at = firsts.get(day) or local_midnight(day, zone)
                found.append((at, "streak_milestone", f"{length}-day learning streak"))
    for course in data.courses:
        if not course.enrolled:
            continue
        entry = data.live_catalog(course.course_id)
        if course_progress(course, entry) < 100.0:
            continue
        at = completed_at(course, entry)
        if at is None:
            continue
        name = f'"{entry.title}"' if entry is not None and entry.title else course.course_id
        found.append((at, "course_completed", f"Completed {name}"))
    found.sort(key=lambda item: (-item[0].timestamp(), item[1], item[2]))
    return [
        Notification(kind=kind, message=message, at=iso_utc(at))  # type: ignore[arg-type]
        for at, kind, message in found[:limit]
    ]
