"""The ingest workload: a realistic, reproducible stream of learning events.

``generate(events, students, courses, days, seed)`` returns a ``Workload``: the
messages to produce (key = studentId, value = JSON) in the order a producer
sends them, the catalog, and what a correct pipeline must end up with, computed
here independently of the project's code:

- every student has at least one event; the rest are spread at random (about
  ``events / students`` each), over 1–3 of the ``courses`` courses;
- per student: an enrollment first, then lesson progress (about 60 % completing
  the lesson, sometimes repeating one), quizzes after every 4th lesson with
  retakes, a few re-enrollments and unenrollments; ``timeSpent`` in minutes;
- ``occurredAt`` within the last ``days`` days (UTC text), each student in an
  IANA zone; the stream is in ``occurredAt`` order except 5 % of the events,
  which are sent late (moved up to ~20k messages later), and 1 % are sent twice
  (a copy with the same ``eventId`` further on);
- ``expected``: per student the docs/api.md § Metric rules total points, and minutes per local
  date (the aggregation of the issue: dedup by eventId, points, minutes per
  local day); ``sample``: every event of a few students, for a full comparison
  with ``testkit/reference.py``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson

ZONES = [
    "Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo",
    "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo", "Africa/Nairobi", "UTC",
]  # fmt: skip
LATE_SHARE = 0.05
DUPLICATE_SHARE = 0.01
LATE_MAX_SHIFT = 20_000
DUPLICATE_MAX_SHIFT = 50_000


@dataclass
class Workload:
    """Messages in send order, the catalog, and the expected aggregates."""

    messages: list[tuple[bytes, bytes]]
    catalog: list[dict[str, Any]]
    unique_events: int
    students: int
    expected_points: dict[str, int] = field(default_factory=dict)
    # student -> local date (ISO) -> minutes
    expected_minutes: dict[str, dict[str, float]] = field(default_factory=dict)
    sample: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def catalog_map(self) -> dict[str, tuple[str, int]]:
        return {c["courseId"]: (c["title"], c["totalLessons"]) for c in self.catalog}


def make_catalog(courses: int) -> list[dict[str, Any]]:
    rng = random.Random(courses)
    return [
        {"courseId": f"course-{i + 1:03d}", "title": f"Course {i + 1}",
         "totalLessons": rng.choice([8, 12, 16, 20, 24, 30])}
        for i in range(courses)
    ]  # fmt: skip


def _iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class _Student:
    """Generates one student's events in occurredAt order and its expected totals."""

    def __init__(self, rng: random.Random, sid: str, catalog: list[dict[str, Any]]) -> None:
        self.rng, self.sid = rng, sid
        self.zone = rng.choice(ZONES)
        self.courses = rng.sample(catalog, rng.choice([1, 1, 2, 2, 3]))
        self.enrolled: set[str] = set()
        self.lesson: dict[str, int] = defaultdict(int)
        self.serial = 0
        self.done: set[tuple[str, str]] = set()
        self.best: dict[tuple[str, str], float] = {}

    def event(self, at_ms: int) -> dict[str, Any]:
        rng = self.rng
        course = rng.choice(self.courses)
        cid, total = course["courseId"], course["totalLessons"]
        self.serial += 1
        base = {"eventId": f"{self.sid}-e{self.serial}", "studentId": self.sid,
                "courseId": cid, "occurredAt": _iso(at_ms), "timezone": self.zone}  # fmt: skip
        roll = rng.random()
        if cid not in self.enrolled or roll < 0.02:
            self.enrolled.add(cid)
            return {**base, "type": "enrolled"}
        if roll < 0.03:
            self.enrolled.discard(cid)
            return {**base, "type": "unenrolled"}
        n = self.lesson[cid]
        if roll < 0.80 or n == 0 or n % 4 != 0:
            redo = n > 0 and rng.random() < 0.1
            number = rng.randint(1, n) if redo else min(n + 1, total)
            done = rng.random() < 0.6
            if done and not redo:
                self.lesson[cid] = number
            lesson = f"lesson-{number:02d}"
            if done:
                self.done.add((cid, lesson))
            return {**base, "type": "lesson_progress", "lessonId": lesson,
                    "moduleId": f"module-{(number - 1) // 4 + 1}", "completed": done,
                    "timeSpent": rng.choice([5, 10, 12.5, 15, 20, 30, 45])}  # fmt: skip
        quiz = f"quiz-{n // 4}"
        score = float(rng.randint(40, 100))
        key = (cid, quiz)
        self.best[key] = max(self.best.get(key, 0.0), score)
        return {**base, "type": "quiz_completed", "quizId": quiz, "score": score,
                "timeSpent": 10}  # fmt: skip

    def points(self) -> int:
        return 10 * len(self.done) + sum(math.floor(b / 10) for b in self.best.values())


def generate(
    events: int, students: int, courses: int = 50, days: float = 6.0, seed: int = 4,
    sample_students: int = 200, now: dt.datetime | None = None,
) -> Workload:  # fmt: skip
    """The workload (see the module docstring)."""
    if events < students:
        raise ValueError("need at least one event per student")
    rng = random.Random(seed)
    catalog = make_catalog(courses)
    counts = [1] * students
    for _ in range(events - students):
        counts[rng.randrange(students)] += 1
    now_ms = int((now or dt.datetime.now(dt.UTC)).timestamp() * 1000) - 60_000
    span = int(days * 86_400_000)
    sample_every = max(1, students // max(1, sample_students))
    zones = {name: ZoneInfo(name) for name in ZONES}

    stamped: list[tuple[int, bytes, bytes]] = []
    wl = Workload([], catalog, events, students)
    for n in range(students):
        sid = f"s{n:07d}"
        st = _Student(rng, sid, catalog)
        times = sorted(now_ms - rng.randrange(span) for _ in range(counts[n]))
        minutes: dict[str, float] = defaultdict(float)
        keep = [] if n % sample_every == 0 else None
        key = sid.encode()
        zone = zones[st.zone]
        for at in times:
            ev = st.event(at)
            if ev["type"] in ("lesson_progress", "quiz_completed"):
                day = dt.datetime.fromtimestamp(at / 1000, zone).date().isoformat()
                minutes[day] += ev["timeSpent"]
            stamped.append((at, key, orjson.dumps(ev)))
            if keep is not None:
                keep.append(ev)
        wl.expected_points[sid] = st.points()
        wl.expected_minutes[sid] = dict(minutes)
        if keep is not None:
            wl.sample[sid] = keep

    stamped.sort(key=lambda item: item[0])
    ordered: list[tuple[float, bytes, bytes]] = []
    for pos, (_, key, value) in enumerate(stamped):
        late = rng.random() < LATE_SHARE
        ordered.append((pos + rng.randint(1, LATE_MAX_SHIFT) + 0.5 if late else pos, key, value))
        if rng.random() < DUPLICATE_SHARE:
            ordered.append((pos + rng.randint(1, DUPLICATE_MAX_SHIFT) + 0.25, key, value))
    ordered.sort(key=lambda item: item[0])
    wl.messages = [(key, value) for _, key, value in ordered]
    return wl
