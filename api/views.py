"""The three dashboard answers, from one read each (no I/O here but through ``api.store``).

Each ``*_view`` loads what it needs with ``store.load_student`` in one round
trip, decides "today" (``tz``, else the zone of the latest event, else UTC) and
hands the records to the pure rules of ``api.metrics``/``api.notifications``.
Daily rows are read around the UTC date with ``store.DATE_MARGIN`` so "today"
can be decided after the read. Blocking: call from a worker thread. Each
``kept_*_view`` answers the same from a payload still current in the
``DashboardCache``, without I/O (so on the event loop), with the ``Basis`` the
route keeps the answer with (``api.kept_answers``), or returns None.
"""

from __future__ import annotations

import datetime as dt

from clickhouse_connect.driver.client import Client

from api import metrics, store
from api.dashboard_cache import DashboardCache
from api.kept_answers import Basis
from api.models import ProgressApplied, RealtimeDashboard, Statistics
from api.notifications import notifications
from api.records import StudentData
from api.timeutil import iso_utc, local_today, request_zone


def _today(data: StudentData, tz: str | None, now: dt.datetime) -> tuple[dt.date, dt.tzinfo]:
    zone = request_zone(tz, data.summary.last_event_tz if data.summary else None)
    return local_today(now, zone), zone


def _basis(data: StudentData, today: dt.date, zone: dt.tzinfo) -> Basis | None:
    """What an answer from ``data`` depended on, if it came from a dashboard payload."""
    if data.version is None:
        return None
    course_ids = tuple(course.course_id for course in data.courses)
    return Basis(data.version, today, zone, course_ids, dict(data.catalog))


def _read_range(now: dt.datetime, days: int) -> tuple[dt.date, dt.date]:
    """The dates to read for ``days`` local dates ending today, whatever the zone."""
    utc_date = now.astimezone(dt.UTC).date()
    since = utc_date - (days - 1) * metrics.ONE_DAY - store.DATE_MARGIN
    return since, utc_date + store.DATE_MARGIN


def _realtime(
    student_id: str, data: StudentData, tz: str | None, now: dt.datetime
) -> tuple[RealtimeDashboard, Basis | None]:
    today, zone = _today(data, tz, now)
    courses = metrics.course_list(data)
    answer = RealtimeDashboard(
        student_id=student_id,
        generated_at=iso_utc(now),
        courses=courses,
        weekly_activity=metrics.weekly_activity(data.days, today),
        summary=metrics.summary_of(courses, data.summary, today),
        recent_activity=metrics.recent_activity(data.summary),
        notifications=notifications(data, zone),
    )
    return answer, _basis(data, today, zone)


def _statistics(
    student_id: str, data: StudentData, days: int, tz: str | None, now: dt.datetime
) -> tuple[bytes, Basis | None]:
    """The JSON body of the answer (``metrics.statistics_body``)."""
    today, zone = _today(data, tz, now)
    return metrics.statistics_body(student_id, data, today, days), _basis(data, today, zone)


def _realtime_data(
    client: Client, cache: DashboardCache | None, student_id: str, now: dt.datetime
) -> StudentData:
    since, until = _read_range(now, metrics.WEEK_DAYS)
    return store.load_student(client, student_id, since, until, all_active_days=True, cache=cache)


def realtime_answer(
    client: Client,
    student_id: str,
    tz: str | None,
    now: dt.datetime,
    cache: DashboardCache | None = None,
) -> tuple[RealtimeDashboard, Basis | None]:
    """``GET /api/dashboard/realtime`` read from ClickHouse, with what it depended on
    (None when the student has no dashboard payload)."""
    return _realtime(student_id, _realtime_data(client, cache, student_id, now), tz, now)


def realtime_answers(
    client: Client,
    zones: dict[str, list[str | None]],
    now: dt.datetime,
    cache: DashboardCache | None = None,
) -> dict[str, tuple[int, list[tuple[RealtimeDashboard, Basis | None]]]]:
    """``realtime_answer`` of each student of ``zones`` in each of its zones, from one
    read of all of them (the live streams, ``api.stream_hub``), with the version of the
    payload read (0: none)."""
    since, until = _read_range(now, metrics.WEEK_DAYS)
    loaded = store.load_students(
        client, list(zones), since, until, all_active_days=True, cache=cache
    )
    return {
        student: (data.version or 0, [_realtime(student, data, tz, now) for tz in zones[student]])
        for student, data in loaded.items()
    }


def realtime_view(
    client: Client,
    student_id: str,
    tz: str | None,
    now: dt.datetime,
    cache: DashboardCache | None = None,
) -> RealtimeDashboard:
    """``GET /api/dashboard/realtime``."""
    return realtime_answer(client, student_id, tz, now, cache)[0]


def kept_realtime_view(
    cache: DashboardCache | None, client: Client, student_id: str, tz: str | None, now: dt.datetime
) -> tuple[RealtimeDashboard, Basis | None] | None:
    """``realtime_answer`` from the kept payload, without I/O; None when there is none."""
    since, until = _read_range(now, metrics.WEEK_DAYS)
    data = store.kept_student(cache, client, student_id, since, until, all_active_days=True)
    return None if data is None else _realtime(student_id, data, tz, now)


def _statistics_data(
    client: Client, cache: DashboardCache | None, student_id: str, days: int, now: dt.datetime
) -> StudentData:
    since, until = _read_range(now, days)
    return store.load_student(client, student_id, since, until, cache=cache)


def statistics_answer(
    client: Client,
    student_id: str,
    days: int,
    tz: str | None,
    now: dt.datetime,
    cache: DashboardCache | None = None,
) -> tuple[bytes, Basis | None]:
    """``GET /api/dashboard/statistics`` read from ClickHouse, as its JSON body, with
    what it depended on."""
    data = _statistics_data(client, cache, student_id, days, now)
    return _statistics(student_id, data, days, tz, now)


def statistics_view(
    client: Client,
    student_id: str,
    days: int,
    tz: str | None,
    now: dt.datetime,
    cache: DashboardCache | None = None,
) -> Statistics:
    """``GET /api/dashboard/statistics`` as its model (the same answer, validated)."""
    data = _statistics_data(client, cache, student_id, days, now)
    today, _ = _today(data, tz, now)
    return metrics.statistics(student_id, data, today, days)


def kept_statistics_view(
    cache: DashboardCache | None,
    client: Client,
    student_id: str,
    days: int,
    tz: str | None,
    now: dt.datetime,
) -> tuple[bytes, Basis | None] | None:
    """``statistics_answer`` from the kept payload, without I/O; None when there is none."""
    since, until = _read_range(now, days)
    data = store.kept_student(cache, client, student_id, since, until)
    return None if data is None else _statistics(student_id, data, days, tz, now)


def applied_view(
    client: Client,
    student_id: str,
    event_id: str,
    course_id: str,
    tz: str | None,
    now: dt.datetime,
    cache: DashboardCache | None = None,
) -> ProgressApplied:
    """The 200 answer of ``POST progress/update``: the course and the summary after the event.

    The payload read (with the event) replaces the kept one, so the poster's next
    dashboard read shows the event without waiting for the change feed.
    """
    utc_date = now.astimezone(dt.UTC).date()
    data = store.load_student(client, student_id, utc_date, utc_date, cache=cache)
    today, _ = _today(data, tz, now)
    record = next((c for c in data.courses if c.course_id == course_id), None)
    course = (
        metrics.course_view(record, data.live_catalog(course_id)) if record is not None else None
    )
    return ProgressApplied(
        event_id=event_id,
        course=course,
        summary=metrics.summary_of(metrics.course_list(data), data.summary, today),
    )
