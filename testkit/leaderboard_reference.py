"""An independent reference of docs/api.md § Leaderboards, straight from the events sent.

It shares no code with ``api.ranking``: each learner's points per (local date,
course) come from ``testkit.reference.Reference`` (the events replayed in
``occurredAt`` order), a period's totals are summed here, ranks are counted
literally (one more than the learners with more points) and the answer is
built field by field as the contract states it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from testkit.reference import Reference

PERIOD_DAYS = {"week": 7, "month": 30}


def period_points(
    references: Mapping[str, Reference], period: str, course: str | None, today: dt.date
) -> dict[str, int]:
    """Every learner's points in the period (0 included)."""
    days = PERIOD_DAYS.get(period)
    first = None if days is None else today - dt.timedelta(days=days - 1)
    totals: dict[str, int] = {}
    for student, reference in references.items():
        total = 0
        for (date, course_id), points in reference.course_day_points.items():
            if course is not None and course_id != course:
                continue
            if first is not None and not first <= date <= today:
                continue
            total += points
        totals[student] = total
    return totals


def expected_leaderboard(
    references: Mapping[str, Reference], period: str, course: str | None, today: dt.date, *,
    requester: str, admin: bool = False, limit: int = 10, visible: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The body ``GET /api/leaderboard`` must answer ``requester``.

    ``visible`` maps the learners who chose to be visible to their names.
    """
    names = visible or {}
    totals = {s: p for s, p in period_points(references, period, course, today).items() if p > 0}
    ordered = sorted(totals, key=lambda s: (-totals[s], s))

    def rank(student: str) -> int:
        return 1 + sum(1 for other in totals.values() if other > totals[student])

    entries = []
    for student in ordered[:limit]:
        entry: dict[str, Any] = {
            "rank": rank(student),
            "name": names.get(student, f"Learner {rank(student)}"),
            "points": totals[student],
            "isMe": student == requester,
        }
        if admin or student == requester:
            entry["studentId"] = student
        entries.append(entry)
    if requester in totals:
        fewer = sum(1 for other in totals.values() if other < totals[requester])
        me = {
            "rank": rank(requester),
            "points": totals[requester],
            "percentile": round(100 * fewer / len(totals), 1),
        }
    else:
        me = {"rank": None, "points": 0, "percentile": 0.0}
    days = PERIOD_DAYS.get(period)
    return {
        "period": period,
        "courseId": course,
        "from": None if days is None else (today - dt.timedelta(days=days - 1)).isoformat(),
        "to": today.isoformat(),
        "ranked": len(totals),
        "entries": entries,
        "me": me,
    }
