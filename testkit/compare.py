"""Compare the API's dashboards with the reference, field by field.

``expected_realtime`` / ``expected_statistics`` compute what the contract (docs/api.md) says the API
must answer, from all the events a student sent (duplicates included: the
reference drops them itself) and the catalog; ``wait_for_match`` polls the API
until it matches (the pipeline is asynchronous) and otherwise fails with the diff.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from testkit.reference import Reference
from testkit.stack import Stack

# course -> (title, totalLessons) or (title, totalLessons, listed lessons or None)
Catalog = dict[str, tuple[Any, ...]]


def _now(body: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(body["generatedAt"].replace("Z", "+00:00"))


def realtime_view(body: dict[str, Any]) -> dict[str, Any]:
    """The comparable part of /realtime (courses keyed by id, order checked apart)."""
    return {
        "studentId": body["studentId"],
        "courses": {c["courseId"]: c for c in body["courses"]},
        "weeklyActivity": body["weeklyActivity"],
        "summary": body["summary"],
        "recentActivity": body["recentActivity"],
        "notifications": body["notifications"],
    }


def expected_realtime(
    student: str,
    events: list[dict[str, Any]],
    catalog: Catalog,
    now: dt.datetime,
    tz: str | None = None,
) -> dict[str, Any]:
    ref = Reference(events, catalog)
    today = ref.today(now, tz)
    return {
        "studentId": student,
        "courses": {c["courseId"]: c for c in ref.courses()},
        "weeklyActivity": ref.weekly(today),
        "summary": ref.summary(today),
        "recentActivity": ref.recent(),
        "notifications": ref.notifications(),
    }


def expected_statistics(
    student: str, events: list[dict[str, Any]], catalog: Catalog, now: dt.datetime, days: int,
    tz: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    ref = Reference(events, catalog)
    return {"studentId": student, **ref.statistics(ref.today(now, tz), days)}


def statistics_view(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("studentId", "days", "from", "to", "totals", "daily", "courses")}


def check_student(
    stack: Stack,
    student: str,
    events: list[dict[str, Any]],
    catalog: Catalog,
    tz: str | None = None,
) -> list[str]:
    """Differences between the API and the reference for one student ([] = equal)."""
    params = {"tz": tz} if tz else {}
    problems: list[str] = []
    realtime = stack.get("/api/dashboard/realtime", student, **params)
    if realtime.status_code != 200:
        return [f"realtime {realtime.status_code}: {realtime.text}"]
    body = realtime.json()
    got, want = realtime_view(body), expected_realtime(student, events, catalog, _now(body), tz)
    for key in want:
        if got[key] != want[key]:
            problems.append(f"{student} realtime.{key}:\n  got  {got[key]}\n  want {want[key]}")
    stamps = [c["lastActivityAt"] for c in body["courses"] if c["lastActivityAt"]]
    if stamps != sorted(stamps, reverse=True):
        problems.append(f"{student} courses not sorted by lastActivityAt: {stamps}")
    for days in (30, 7):
        stats = stack.get("/api/dashboard/statistics", student, days=days, **params)
        if stats.status_code != 200:
            problems.append(f"statistics {stats.status_code}: {stats.text}")
            continue
        sbody = stats.json()
        want_stats = expected_statistics(student, events, catalog, _now(body), days, tz)
        got_stats = statistics_view(sbody)
        for key in want_stats:
            if got_stats[key] != want_stats[key]:
                problems.append(
                    f"{student} statistics(days={days}).{key}:\n  got  {got_stats[key]}\n"
                    f"  want {want_stats[key]}"
                )
    return problems


def wait_for_match(
    check: Callable[[], list[str]], timeout: float = 60.0, interval: float = 0.5
) -> None:
    """Poll ``check`` until it reports no difference; fail with the last differences."""
    deadline = time.monotonic() + timeout
    problems = check()
    while problems and time.monotonic() < deadline:
        time.sleep(interval)
        problems = check()
    assert not problems, "\n".join(problems[:10])
