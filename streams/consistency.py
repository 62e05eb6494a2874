"""Students recomputed from their counted events, compared with what is stored (pure logic).

``learning_events`` is the truth (docs/architecture.md § Delivery): a student's
state is exactly its counted events applied by the rules of
``streams.student_state``, in any order. ``rebuild`` does that from the rows of
``infra.ops_queries`` ("events"); ``compare`` recomputes the dashboard payload the
worker would write (``streams.rows.student_rows``) and compares it, part by part,
with the stored one (``student_dashboard``), which is everything the API answers
from besides the catalog and the clock.

Only what the API can read is compared: the days of a payload older than
``API_DAYS`` (without a completion) drop out of newer payloads as time passes,
so they are left out on both sides. Events written after the stored payload
(``batch_version`` above its version) are left out of the recomputation, so a
check racing the worker compares like with like; a write in flight can still
make a student differ for a moment, which is why callers confirm a difference
by comparing again. No I/O, no clock: ``now`` is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from schemas.events import LearningEvent, ParsedEvent
from streams import rows
from streams.student_state import StudentState

EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# The oldest local date an answer can show: 365 days back (statistics) and a day
# of margin for zones ahead of UTC (api.store.DATE_MARGIN).
API_DAYS = 367
PAYLOAD_PARTS = ("totalPoints", "activeDays", "levelReachedAt", "zone", "recentActivity")
COURSE_FIELDS = (
    "enrolled",
    "firstEnrolledAt",
    "completedLessons",
    "completionTimes",
    "reportedProgress",
    "reportedProgressAt",
    "timeSpentMinutes",
    "lastActivityAt",
)
DAY_FIELDS = (
    "minutes",
    "lessonsCompleted",
    "completions",
    "quizzesCompleted",
    "quizScoreSum",
    "points",
    "firstCompletionAt",
)
VERSION = -1  # index of batch_version in an event row


@lru_cache(maxsize=1 << 12)
def _date(days: int) -> dt.date:
    return dt.date.fromordinal(EPOCH_ORDINAL + days)


def event_from_row(row: Sequence[Any]) -> ParsedEvent:
    """A counted event from an "events" row (it was validated when it was counted)."""
    (
        event_id,
        student_id,
        kind,
        course_id,
        module_id,
        lesson_id,
        quiz_id,
        occurred_ms,
        day,
        zone_label,
        completed,
        time_spent,
        progress,
        score,
        _version,
    ) = row
    event = _new(LearningEvent)
    values = {
        "event_id": event_id, "type": kind, "student_id": student_id, "course_id": course_id,
        "module_id": module_id, "lesson_id": lesson_id, "quiz_id": quiz_id,
        "completed": bool(completed), "time_spent": time_spent, "progress": progress,
        "score": score, "timezone": None,
    }  # fmt: skip
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", _FIELDS_SET)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return ParsedEvent(event, int(occurred_ms), _date(int(day)), zone_label, event_id, student_id)


# ``LearningEvent.model_construct`` without its per-field work: it was 40 % of a
# rebuild's time (events from ClickHouse were validated when they were counted).
_new = object.__new__
_set = object.__setattr__
_FIELDS_SET = frozenset(
    ("event_id", "type", "student_id", "course_id", "module_id", "lesson_id", "quiz_id",
     "completed", "time_spent", "progress", "score", "timezone")
)  # fmt: skip


def group_events(event_rows: Iterable[Sequence[Any]]) -> dict[str, list[Sequence[Any]]]:
    """Event rows per student."""
    grouped: dict[str, list[Sequence[Any]]] = {}
    for row in event_rows:
        grouped.setdefault(row[1], []).append(row)
    return grouped


def rebuild(
    student_id: str, event_rows: Iterable[Sequence[Any]], partition: int = 0
) -> StudentState:
    """The state of a student from its counted events alone (repeated ids count once),
    with every course and day marked to be written."""
    state = StudentState(student_id=student_id, partition=partition)
    for row in event_rows:
        state.apply(event_from_row(row))
    state.dirty_courses = set(state.courses)
    state.dirty_days = set(state.days)
    state.dirty = True
    return state


def payload(state: StudentState, now: dt.datetime, version: int = 0) -> str:
    """The ``student_dashboard`` payload the worker writes for ``state`` at ``now``."""
    return str(rows.student_rows(state, now, version).dashboard[1])


@dataclass(slots=True)
class Comparison:
    """One student: the stored payload against the one recomputed from its events."""

    student_id: str
    version: int | None  # of the stored payload (None: there is none)
    events: int  # counted events recomputed from
    stored: str | None
    recomputed: str | None
    differences: list[str] = field(default_factory=list)  # payload parts that differ


def compare(
    dashboards: Iterable[Sequence[Any]],
    event_rows: Iterable[Sequence[Any]],
    now: dt.datetime,
    students: Iterable[str] = (),
) -> dict[str, Comparison]:
    """Compare every student of ``dashboards`` rows (student, payload, version) and of
    ``event_rows`` (and of ``students``: ones with neither are equal)."""
    stored = {row[0]: (row[1], int(row[2])) for row in dashboards}
    grouped = group_events(event_rows)
    oldest = (now.date() - dt.timedelta(days=API_DAYS)).isoformat()
    result: dict[str, Comparison] = {}
    for sid in sorted({*stored, *grouped, *students}):
        text, version = stored.get(sid, (None, None))
        mine = grouped.get(sid, [])
        if version is not None:  # written after the stored payload: not in it yet
            mine = [row for row in mine if row[VERSION] <= version]
        recomputed = payload(rebuild(sid, mine), now) if mine else None
        found = Comparison(sid, version, len(mine), text, recomputed)
        if text is None and recomputed is not None:
            found.differences.append("dashboard missing")
        elif text is not None and recomputed is None:
            found.differences.append("no counted events")
        elif text is not None and recomputed is not None:
            found.differences = payload_differences(text, recomputed, oldest)
        result[sid] = found
    return result


def payload_differences(stored: str | bytes, recomputed: str | bytes, oldest: str) -> list[str]:
    """The parts of two payloads that differ (names as in the analyst tables' terms):
    ``totalPoints``, ``courses[c1].completedLessons``, ``days[2026-11-20 c1].minutes``...

    Days dated before ``oldest`` (ISO) without a completion are not compared.
    """
    if stored == recomputed:
        return []
    a, b = orjson.loads(stored), orjson.loads(recomputed)
    found = [name for name, x, y in zip(PAYLOAD_PARTS, a, b, strict=False) if x != y]
    found += _keyed_differences("courses", _by_key(a[5], 1), _by_key(b[5], 1), COURSE_FIELDS)
    shown_a = [d for d in a[6] if d[0] >= oldest or d[4] > 0]
    shown_b = [d for d in b[6] if d[0] >= oldest or d[4] > 0]
    found += _keyed_differences("days", _by_key(shown_a, 2), _by_key(shown_b, 2), DAY_FIELDS)
    return found


def _by_key(items: list[list[Any]], width: int) -> dict[str, list[Any]]:
    return {" ".join(map(str, item[:width])): item[width:] for item in items}


def _keyed_differences(
    name: str, a: dict[str, list[Any]], b: dict[str, list[Any]], fields: tuple[str, ...]
) -> list[str]:
    found: list[str] = []
    for key in sorted({*a, *b}):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            found.append(f"{name}[{key}] {'missing' if x is None else 'extra'}")
            continue
        found += [
            f"{name}[{key}].{label}" for label, u, v in zip(fields, x, y, strict=False) if u != v
        ]
    return found
