"""ClickHouse reads of the API: one point read per dashboard, one per apply check.

A dashboard payload still current in the ``api.dashboard_cache`` needs no read
(``kept_student``); one read is offered to it (``load_student(..., cache=)``).

``load_student`` reads the student's ``student_dashboard`` row (one column of
one row in small granules: ~1 ms in the embedded engine) and takes the titles
from the catalog kept by ``api.catalog_cache``. A student written before that
table existed (migration 0004) has no such row yet: then the courses, their
catalog entries, the summary row and the daily rows are read from the aggregate
tables in a single ``UNION ALL`` query (every branch filters by ``student_id``
first, the head of each sort key, and reads the ReplacingMergeTree tables with
``FINAL``); both give the same records, to which ``api.lesson_rules.rerate``
applies the catalog's lesson rules. ``event_applied`` tells whether
the worker has counted an event (its ``learning_events`` row exists; the worker
writes that row after the aggregates, so the aggregates then include it).

Failures of ClickHouse (down, timeouts) raise ``StoreUnavailable``, which the
app answers with 503. Calls block: run them off the event loop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from api import payload
from api.catalog_cache import CatalogCache
from api.dashboard_cache import DashboardCache
from api.lesson_rules import rerate
from api.records import CatalogEntry, CourseRecord, DayRecord, StudentData, SummaryRecord
from api.timeutil import as_utc

log = logging.getLogger(__name__)

# Every local date is within one day of the UTC date, whatever the zone; daily
# rows are read with this margin so that "today" may be decided after the read.
DATE_MARGIN = dt.timedelta(days=1)


class StoreUnavailable(RuntimeError):
    """ClickHouse could not answer."""


_TS = "Nullable(DateTime64(3, 'UTC'))"
_NO_TS = f"CAST(NULL AS {_TS})"
_NO_TS_ARRAY = "CAST([] AS Array(DateTime64(3, 'UTC')))"
_NO_DATES = "CAST([] AS Array(Date))"

# One row shape for all four branches; k says which table a row comes from:
# k, id, d, a, b, c, e, f, g, t1, t2, t3, s1, s2, ts, ds
_LOAD_SQL = f"""
SELECT 0 AS k, course_id AS id, toDate(0) AS d, toFloat64(enrolled) AS a,
       toFloat64(completed_lessons) AS b, CAST(reported_progress AS Nullable(Float64)) AS c,
       time_spent_minutes AS e, 0. AS f, 0. AS g, CAST(first_enrolled_at AS {_TS}) AS t1,
       CAST(reported_progress_at AS {_TS}) AS t2, CAST(last_activity_at AS {_TS}) AS t3,
       '' AS s1, '' AS s2, completion_times AS ts, {_NO_DATES} AS ds
FROM student_courses FINAL WHERE student_id = {{student:String}}
UNION ALL
SELECT 1, course_id, toDate(0), toFloat64(total_lessons), toFloat64(deleted),
       toFloat64(lessons_listed), 0., 0., 0., {_NO_TS}, {_NO_TS}, {_NO_TS}, title,
       arrayStringConcat(lessons, '\n'), {_NO_TS_ARRAY}, {_NO_DATES}
FROM course_catalog FINAL
WHERE course_id IN (SELECT course_id FROM student_courses WHERE student_id = {{student:String}})
UNION ALL
SELECT 2, '', toDate(0), toFloat64(total_points), 0., NULL, 0., 0., 0.,
       {_NO_TS}, {_NO_TS}, {_NO_TS}, last_event_tz, recent_activity, level_reached_at, active_days
FROM student_summary FINAL WHERE student_id = {{student:String}}
UNION ALL
SELECT 3, course_id, local_date, minutes, toFloat64(lessons_completed), toFloat64(completions),
       toFloat64(quizzes_completed), quiz_score_sum, toFloat64(points), first_completion_at,
       {_NO_TS}, {_NO_TS}, '', '', {_NO_TS_ARRAY}, {_NO_DATES}
FROM student_course_daily FINAL
WHERE student_id = {{student:String}}
  AND ((local_date >= {{since:Date}} AND local_date <= {{until:Date}})
       OR ({{with_active:UInt8}} = 1 AND completions > 0))
"""

_DASHBOARD_SQL = (
    "SELECT payload, version FROM student_dashboard FINAL WHERE student_id = {student:String}"
)
_DASHBOARDS_SQL = (
    "SELECT student_id, payload, version FROM student_dashboard FINAL "
    "WHERE student_id IN {students:Array(String)}"
)
CATALOG = CatalogCache()

_APPLIED_SQL = (
    "SELECT count() FROM learning_events "
    "WHERE student_id = {student:String} AND event_id = {event:String}"
)


def _ts(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)


def _parse(rows: list[tuple[Any, ...]]) -> StudentData:
    courses: list[CourseRecord] = []
    catalog: dict[str, CatalogEntry] = {}
    summary: SummaryRecord | None = None
    days: list[DayRecord] = []
    for k, key, day, a, b, c, e, f, g, t1, t2, t3, s1, s2, ts, ds in rows:
        if k == 0:
            courses.append(CourseRecord(
                course_id=key, enrolled=a > 0, first_enrolled_at=_ts(t1),
                completed_lessons=int(b), completion_times=tuple(as_utc(t) for t in ts),
                reported_progress=c, reported_progress_at=_ts(t2), time_spent_minutes=e,
                last_activity_at=_ts(t3),
            ))  # fmt: skip
        elif k == 1:  # lesson ids hold no control character: joined by line breaks
            lessons = frozenset(s2.split("\n")) - {""} if c else None
            catalog[key] = CatalogEntry(key, s1, int(a), b > 0, lessons)
        elif k == 2:
            summary = SummaryRecord(
                total_points=int(a), active_days=tuple(sorted(ds)),
                level_reached_at=tuple(as_utc(t) for t in ts), last_event_tz=s1,
                recent_activity=s2 or "[]",
            )  # fmt: skip
        else:
            days.append(DayRecord(
                local_date=day, course_id=key, minutes=a, lessons_completed=int(b),
                completions=int(c or 0), quizzes_completed=int(e), quiz_score_sum=f,
                points=int(g), first_completion_at=_ts(t1),
            ))  # fmt: skip
    return StudentData(tuple(courses), catalog, summary, tuple(days))


@contextlib.contextmanager
def _dashboard_read() -> Iterator[None]:
    """Turn ClickHouse failures of a dashboard read into ``StoreUnavailable`` (503)."""
    try:
        yield
    except (ClickHouseError, OSError) as exc:
        log.error("ClickHouse read failed for a dashboard: %s", exc)
        raise StoreUnavailable("ClickHouse is unavailable; try again shortly") from exc


def load_student(
    client: Client,
    student_id: str,
    since: dt.date,
    until: dt.date,
    *,
    all_active_days: bool = False,
    cache: DashboardCache | None = None,
) -> StudentData:
    """A student's courses, catalog entries, summary, and daily rows dated ``since``..``until``.

    With ``all_active_days`` the daily rows of every active date (one with
    completions) are read too, whenever it was, for the streak-milestone
    notifications. Callers
    widen the range by ``DATE_MARGIN`` when "today" is not known yet. The payload
    read is offered to ``cache`` (``api.dashboard_cache``), which keeps it while current.
    """
    with _dashboard_read():
        read_started = cache.clock() if cache is not None else 0.0
        found = client.query(_DASHBOARD_SQL, parameters={"student": student_id}).result_rows
        if not found:
            return load_student_from_aggregates(
                client, student_id, since, until, all_active_days=all_active_days
            )
        raw, version = found[0]
        if cache is not None:
            cache.put(student_id, raw, int(version), read_started)
        data = payload.decode(raw, since, until, all_active_days=all_active_days)
        catalog = CATALOG.entries(client, (course.course_id for course in data.courses))
    return rerate(StudentData(data.courses, catalog, data.summary, data.days, int(version)))


def load_students(
    client: Client,
    student_ids: list[str],
    since: dt.date,
    until: dt.date,
    *,
    all_active_days: bool = False,
    cache: DashboardCache | None = None,
) -> dict[str, StudentData]:
    """``load_student`` of several students with one ``student_dashboard`` read (the live
    streams read the students a poll of the change feed found changed together)."""
    with _dashboard_read():
        read_started = cache.clock() if cache is not None else 0.0
        rows = client.query(_DASHBOARDS_SQL, parameters={"students": student_ids}).result_rows
    found = {student: (raw, int(version)) for student, raw, version in rows}
    loaded: dict[str, StudentData] = {}
    for student in student_ids:
        if student not in found:  # no dashboard row (yet): as load_student reads it
            loaded[student] = load_student(
                client, student, since, until, all_active_days=all_active_days, cache=cache
            )
            continue
        raw, version = found[student]
        if cache is not None:
            cache.put(student, raw, version, read_started)
        data = payload.decode(raw, since, until, all_active_days=all_active_days)
        with _dashboard_read():
            catalog = CATALOG.entries(client, (course.course_id for course in data.courses))
        loaded[student] = StudentData(data.courses, catalog, data.summary, data.days, version)
    return loaded


def kept_student(
    cache: DashboardCache | None,
    client: Client,
    student_id: str,
    since: dt.date,
    until: dt.date,
    *,
    all_active_days: bool = False,
) -> StudentData | None:
    """``load_student`` from kept copies only, without I/O: None unless the student's
    payload is current in ``cache`` and the catalog copy is fresh (``kept_entries``)."""
    current = cache.current(student_id) if cache is not None else None
    if current is None:
        return None
    version, raw = current
    data = payload.decode(raw, since, until, all_active_days=all_active_days)
    catalog = CATALOG.kept_entries(client, (course.course_id for course in data.courses))
    if catalog is None:
        return None
    return rerate(StudentData(data.courses, catalog, data.summary, data.days, version))


def load_student_from_aggregates(
    client: Client,
    student_id: str,
    since: dt.date,
    until: dt.date,
    *,
    all_active_days: bool = False,
) -> StudentData:
    """``load_student`` from the four aggregate tables (students without a dashboard row)."""
    parameters = {
        "student": student_id,
        "since": since,
        "until": until,
        "with_active": 1 if all_active_days else 0,
    }
    with _dashboard_read():
        result = client.query(_LOAD_SQL, parameters=parameters)
    return rerate(_parse(result.result_rows))


def event_applied(client: Client, student_id: str, event_id: str) -> bool:
    """True once the worker has counted the event (its ``learning_events`` row exists)."""
    try:
        result = client.query(_APPLIED_SQL, parameters={"student": student_id, "event": event_id})
    except (ClickHouseError, OSError) as exc:
        raise StoreUnavailable("ClickHouse is unavailable; try again shortly") from exc
    return bool(result.result_rows and result.result_rows[0][0])


def ping(client: Client) -> None:
    """Raise ``StoreUnavailable`` unless ClickHouse answers ``SELECT 1``."""
    try:
        client.command("SELECT 1")
    except (ClickHouseError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc
