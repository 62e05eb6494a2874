"""What the API would answer from a dashboard payload, as flat fields to compare.

``answers(student, payload, catalog, now)`` decodes a ``student_dashboard``
payload the way the API does (``api.payload``) and derives the ``/realtime``
answer and the ``/statistics`` answers of ``PERIODS`` days with the API's own
pure rules (``api.metrics``, ``api.notifications``), "today" in the zone of the
student's latest event as for a request without ``tz``. ``flatten`` turns an
answer into ``{"realtime.summary.totalPoints": 120, ...}`` (courses keyed by
``courseId``, days by ``date``), so ``differences`` can name the fields that
differ between the answer served from the stored payload and the one from a
recomputed payload.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from api import metrics
from api.notifications import notifications
from api.payload import decode
from api.records import CatalogEntry, StudentData
from api.timeutil import local_today, request_zone

PERIODS = (7, 30, 90, 365)
KEYED_LISTS = {"courses": "courseId", "weeklyActivity": "date", "daily": "date"}


def answers(
    student_id: str, payload: str, catalog: dict[str, CatalogEntry], now: dt.datetime
) -> dict[str, Any]:
    """The realtime answer and the statistics answers of ``PERIODS`` (``generatedAt`` left out)."""
    utc_date = now.astimezone(dt.UTC).date()
    since = utc_date - dt.timedelta(days=max(PERIODS))
    decoded = decode(payload, since, utc_date + dt.timedelta(days=1), all_active_days=True)
    mine = {c.course_id: catalog[c.course_id] for c in decoded.courses if c.course_id in catalog}
    data = StudentData(decoded.courses, mine, decoded.summary, decoded.days)
    zone = request_zone(None, data.summary.last_event_tz if data.summary else None)
    today = local_today(now, zone)
    courses = metrics.course_list(data)
    realtime = {
        "courses": [c.model_dump(mode="json", by_alias=True) for c in courses],
        "weeklyActivity": [
            d.model_dump(mode="json", by_alias=True)
            for d in metrics.weekly_activity(data.days, today)
        ],
        "summary": metrics.summary_of(courses, data.summary, today).model_dump(by_alias=True),
        "recentActivity": [
            r.model_dump(mode="json", by_alias=True) for r in metrics.recent_activity(data.summary)
        ],
        "notifications": [
            n.model_dump(mode="json", by_alias=True) for n in notifications(data, zone)
        ],
    }
    found: dict[str, Any] = {"realtime": realtime}
    for days in PERIODS:
        body = orjson.loads(metrics.statistics_body(student_id, data, today, days))
        found[f"statistics(days={days})"] = body
    return found


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by path (see the module)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(item, list) and key in KEYED_LISTS:
                field = KEYED_LISTS[key]
                for element in item:
                    flat.update(flatten(element, f"{name}[{element.get(field)}]"))
                flat[f"{name}.length"] = len(item)
            else:
                flat.update(flatten(item, name))
        return flat
    if isinstance(value, list):
        flat = {f"{prefix}.length": len(value)}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def differences(served: dict[str, Any], recomputed: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, served value, recomputed value) for every field that differs, in order."""
    a, b = flatten(served), flatten(recomputed)
    missing = object()
    found = []
    for key in [*a, *(k for k in b if k not in a)]:
        x, y = a.get(key, missing), b.get(key, missing)
        if x != y:
            found.append((key, None if x is missing else x, None if y is missing else y))
    return found
