"""Clock, "today" and timestamp formatting for the API (docs/api.md § Metric rules), without I/O.

The clock is injected (``Clock``: a callable returning an aware UTC datetime) so
tests pin "now". "Today" is the date in the request's ``tz`` when given, else in
the zone (or fixed offset) of the student's most recent event, else in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from schemas.events import EPOCH, MILLISECOND, zone, zone_of_label
from schemas.time_format import iso_ms

Clock = Callable[[], dt.datetime]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_occurred_at(text: str) -> dt.datetime:
    """An RFC 3339 timestamp with offset as an aware datetime; ``ValueError`` otherwise."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(
            "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-26T09:00:00+01:00"
        )
    normal = text[:10] + "T" + text[11:]
    fraction = match.group(1)
    if fraction and len(fraction) > 7:  # Python keeps microseconds: drop the rest
        normal = normal.replace(fraction, fraction[:7], 1)
    if normal[-1] in "Zz":
        normal = normal[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(normal)
    except ValueError as exc:
        raise ValueError(f"is not a valid date and time: {exc}") from None


def utc_now() -> dt.datetime:
    """The real clock: now, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (ClickHouse)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    """RFC 3339 UTC text with ``Z``; milliseconds only when not zero."""
    return iso_ms((as_utc(moment) - EPOCH) // MILLISECOND)


def iso_or_none(moment: dt.datetime | None) -> str | None:
    """``iso_utc`` that lets None through."""
    return None if moment is None else iso_utc(moment)


def check_rfc3339(text: str) -> str:
    """``text`` if ``parse_occurred_at`` accepts it, else ``ValueError`` (model validator)."""
    parse_occurred_at(text)
    return text


def check_zone_name(name: str) -> str:
    """``name`` if it is a known IANA zone, else ``ValueError`` (used for ``tz``)."""
    if zone(name) is None:
        raise ValueError(f"{name!r} is not a known IANA time zone, e.g. Europe/Paris")
    return name


def request_zone(tz: str | None, last_event_tz: str | None) -> dt.tzinfo:
    """The zone "today" is taken in: ``tz``, else the latest event's zone, else UTC."""
    if tz:
        return zone(tz) or dt.UTC
    if last_event_tz:
        return zone_of_label(last_event_tz)
    return dt.UTC


def local_today(now: dt.datetime, tzinfo: dt.tzinfo) -> dt.date:
    """The calendar date of ``now`` in ``tzinfo``."""
    return as_utc(now).astimezone(tzinfo).date()


def local_midnight(day: dt.date, tzinfo: dt.tzinfo) -> dt.datetime:
    """The UTC instant of the start of ``day`` in ``tzinfo``."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=tzinfo).astimezone(dt.UTC)


def weekday_name(day: dt.date) -> str:
    """English three-letter weekday, independent of the process locale."""
    return WEEKDAYS[day.weekday()]
