"""Varied learning histories for integration and fault tests.

``student_history`` makes one student's events over the last days: several
courses, zones with and without IANA names (offsets only), partial and repeated
lesson completions, quiz retakes lower and higher, unenroll and re-enroll,
reported progress for courses missing from the catalog. ``delivery_order``
shuffles them (late and out-of-order arrival) and re-sends some (duplicates).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata"]
OFFSETS = ["+00:00", "+05:30", "-03:00", "+09:00"]


def _stamp(at: dt.datetime, offset: str | None) -> str:
    if offset is None:
        return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    sign = -1 if offset[0] == "-" else 1
    delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
    return at.astimezone(dt.timezone(delta)).isoformat()


def student_history(
    rng: random.Random, student: str, courses: list[str], now: dt.datetime, days: int = 20
) -> list[dict[str, Any]]:
    """One student's events in occurredAt order (ids unique to the student)."""
    use_zone = rng.random() < 0.7
    zone = rng.choice(ZONES)
    offset = rng.choice(OFFSETS)
    events: list[dict[str, Any]] = []

    def add(kind: str, course: str, at: dt.datetime, **fields: Any) -> None:
        event = {
            "eventId": f"{student}-e{len(events)}", "type": kind, "studentId": student,
            "courseId": course, **fields,
        }  # fmt: skip
        if use_zone:
            event["occurredAt"] = _stamp(at, None)
            event["timezone"] = zone
        else:
            event["occurredAt"] = _stamp(at, offset)
        events.append(event)

    mine = rng.sample(courses, rng.randint(1, len(courses)))
    start = now - dt.timedelta(days=days)
    for course in mine:
        if rng.random() < 0.7:
            add("enrolled", course, start + dt.timedelta(minutes=rng.randint(0, 600)))
    for day in range(days + 1):
        if rng.random() < 0.35:
            continue
        for _ in range(rng.randint(1, 4)):
            at = start + dt.timedelta(days=day, minutes=rng.randint(0, 1439))
            if at >= now:
                continue
            course = rng.choice(mine)
            roll = rng.random()
            if roll < 0.65:
                fields: dict[str, Any] = {
                    "lessonId": f"l{rng.randint(1, 8)}", "completed": rng.random() < 0.6,
                    "timeSpent": round(rng.uniform(0, 50), 1),
                }  # fmt: skip
                if rng.random() < 0.2:
                    fields["progress"] = round(rng.uniform(0, 100), 1)
                if rng.random() < 0.3:
                    fields["moduleId"] = f"m{rng.randint(1, 3)}"
                add("lesson_progress", course, at, **fields)
            elif roll < 0.9:
                add("quiz_completed", course, at, quizId=f"q{rng.randint(1, 3)}",
                    score=rng.choice([rng.randint(0, 100), round(rng.uniform(0, 100), 2)]),
                    timeSpent=rng.randint(1, 20))  # fmt: skip
            elif roll < 0.95:
                add("unenrolled", course, at)
            else:
                add("enrolled", course, at)
    events.sort(key=lambda e: e["occurredAt"])
    return events


def delivery_order(
    rng: random.Random, events: list[dict[str, Any]], duplicates: float = 0.15
) -> list[dict[str, Any]]:
    """The events shuffled, with a share of them sent again (same eventId)."""
    sent = list(events) + [e for e in events if rng.random() < duplicates]
    rng.shuffle(sent)
    return sent
