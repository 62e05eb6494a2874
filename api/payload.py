"""Decode a ``student_dashboard`` payload into the API's records (pure logic).

The worker writes one JSON payload per student (``streams.rows.student_rows``);
``decode`` turns it into the same ``StudentData`` the four aggregate tables give
(``api.store``), except the catalog, which the caller adds. Times arrive as epoch
milliseconds, dates as ``YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

import orjson

from api.records import CourseRecord, DayRecord, StudentData, SummaryRecord


@lru_cache(maxsize=1 << 14)  # most times are seen once or twice: a big cache only holds memory
def ms_to_datetime(ms: int | None) -> dt.datetime | None:
    """UTC datetime of epoch milliseconds (None stays None)."""
    if ms is None:
        return None
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


_at = ms_to_datetime
_date = dt.date.fromisoformat


def _course(item: list[Any]) -> CourseRecord:
    course_id, enrolled, first_at, lessons, completions, progress, progress_at, minutes = item[:8]
    last = item[8]
    # First completions and quiz awards: payloads written before they were added lack them.
    firsts, awards = (item[9], item[10]) if len(item) > 10 else (None, None)
    return CourseRecord(
        course_id, bool(enrolled), _at(first_at), lessons, tuple(map(_at, completions)),
        progress, _at(progress_at), minutes, _at(last), firsts, awards,
    )  # fmt: skip


def _day(item: list[Any]) -> DayRecord:
    day, course_id, minutes, lessons, completions, quizzes, score_sum, points, first_at = item
    return DayRecord(
        _date(day), course_id, minutes, lessons, completions, quizzes, score_sum, points,
        _at(first_at),
    )  # fmt: skip


def decode(
    payload: str | bytes, since: dt.date, until: dt.date, *, all_active_days: bool = False
) -> StudentData:
    """The records of a payload, with the daily rows dated ``since``..``until``.

    With ``all_active_days`` the rows of every active date (one with
    completions) are kept too, as ``api.store.load_student`` reads them.
    """
    total, active, levels, zone, recent, courses, days = orjson.loads(payload)
    first, last = since.isoformat(), until.isoformat()  # ISO dates sort as dates
    kept = [
        _day(item) for item in days if first <= item[0] <= last or (all_active_days and item[4] > 0)
    ]
    summary = SummaryRecord(
        total_points=total,
        active_days=tuple(dt.date.fromisoformat(day) for day in active),
        level_reached_at=tuple(map(_at, levels)),
        last_event_tz=zone,
        recent_activity=recent,
    )
    return StudentData(tuple(map(_course, courses)), {}, summary, tuple(kept))
