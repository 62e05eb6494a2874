"""Unit tests of the metric rules (docs/api.md) on ``StudentState`` and the rows built from it.

Every rule has named, parametrized cases. Expected values are derived by hand
or by ``reference``: a naive implementation written here that deduplicates by
``eventId``, sorts events by ``occurredAt`` and applies the contract literally. The
order rule ("a late event is applied as if it had arrived in occurredAt order")
is checked by applying the same events in every permutation (or many seeded
shuffles) and comparing a canonical snapshot with the reference. No wall clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas.events import ParsedEvent, parse_event
from streams import rows
from streams.student_state import StudentState

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# ------------------------------------------------------------------ event builders


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> str:
    """An instant of November 2026 in UTC (local date = ``day`` without a timezone)."""
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"


def ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 text, computed without the parser under test."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - EPOCH) // dt.timedelta(milliseconds=1)


def event(payload: dict[str, Any]) -> ParsedEvent:
    base = {"studentId": "s1", "courseId": "c1"}
    return parse_event(orjson.dumps({**base, **payload}), now=NOW, max_future=dt.timedelta(0))


def lesson(
    eid: str,
    when: str,
    lesson_id: str = "l1",
    *,
    completed: bool = True,
    minutes: float = 0,
    course: str = "c1",
    progress: float | None = None,
    tz: str | None = None,
) -> ParsedEvent:
    payload: dict[str, Any] = {
        "eventId": eid,
        "type": "lesson_progress",
        "courseId": course,
        "lessonId": lesson_id,
        "completed": completed,
        "timeSpent": minutes,
        "occurredAt": when,
    }
    if progress is not None:
        payload["progress"] = progress
    if tz is not None:
        payload["timezone"] = tz
    return event(payload)


def quiz(
    eid: str,
    when: str,
    score: float,
    quiz_id: str = "q1",
    *,
    minutes: float = 0,
    course: str = "c1",
) -> ParsedEvent:
    return event(
        {
            "eventId": eid,
            "type": "quiz_completed",
            "courseId": course,
            "quizId": quiz_id,
            "score": score,
            "timeSpent": minutes,
            "occurredAt": when,
        }
    )


def enroll(eid: str, when: str, course: str = "c1", progress: float | None = None) -> ParsedEvent:
    payload: dict[str, Any] = {
        "eventId": eid,
        "type": "enrolled",
        "courseId": course,
        "occurredAt": when,
    }
    if progress is not None:
        payload["progress"] = progress
    return event(payload)


def unenroll(eid: str, when: str, course: str = "c1") -> ParsedEvent:
    return event({"eventId": eid, "type": "unenrolled", "courseId": course, "occurredAt": when})


def apply_all(events: Iterable[ParsedEvent], state: StudentState | None = None) -> StudentState:
    state = state or StudentState(student_id="s1")
    for parsed in events:
        state.apply(parsed)
    return state


def all_daily_rows(state: StudentState) -> dict[tuple[dt.date, str], list[Any]]:
    """Every ``student_course_daily`` row of the state, keyed by (date, course)."""
    state.dirty_days = set(state.days)
    return {(row[1], row[2]): row for row in rows.daily_rows(state, 1)}


def all_course_rows(state: StudentState) -> dict[str, list[Any]]:
    state.dirty_courses = set(state.courses)
    return {row[1]: row for row in rows.course_rows(state, NOW, 1)}


def col(table: str, name: str) -> int:
    return rows.COLUMNS[table].index(name)


DAILY = {name: col("student_course_daily", name) for name in rows.COLUMNS["student_course_daily"]}
COURSE = {name: col("student_courses", name) for name in rows.COLUMNS["student_courses"]}
SUMMARY = {name: col("student_summary", name) for name in rows.COLUMNS["student_summary"]}


# ---------------------------------------------------------------- canonical views


def snapshot(state: StudentState, events: Sequence[ParsedEvent]) -> dict[str, Any]:
    """What the metrics show, read from the state and from its rows."""
    summary = rows.summary_row(state, NOW, 1)
    daily = {
        key: (
            round(row[DAILY["minutes"]], 9),
            row[DAILY["lessons_completed"]],
            row[DAILY["points"]],
            row[DAILY["quizzes_completed"]],
        )
        for key, row in all_daily_rows(state).items()
    }
    courses = all_course_rows(state)
    awards = {}
    for parsed in events:
        e = parsed.event
        if e.type in ("lesson_progress", "quiz_completed"):
            awards[e.event_id] = state.points_awarded(e.event_id)
            # the direct look-up the recent activity uses agrees with the timeline
            direct = state.award(e.type, e.course_id, e.lesson_id, e.quiz_id, e.event_id)
            assert direct == awards[e.event_id]
    recent = [
        (
            item["eventId"],
            item["type"],
            item["courseId"],
            item["lessonId"],
            item["quizId"],
            ms(item["occurredAt"]),
            item["pointsAwarded"],
        )
        for item in orjson.loads(summary[SUMMARY["recent_activity"]])
    ]
    return {
        "total_points": summary[SUMMARY["total_points"]],
        "total_points_state": state.total_points(),
        "level": summary[SUMMARY["level"]],
        "level_reached": summary[SUMMARY["level_reached_at"]],
        "daily": daily,
        "active_days": summary[SUMMARY["active_days"]],
        "first_completions": {
            (cid, lid): first[1]
            for cid, c in state.courses.items()
            for lid, first in c.lessons.items()
        },
        "completed_lessons": {
            cid: row[COURSE["completed_lessons"]]
            for cid, row in courses.items()
            if row[COURSE["completed_lessons"]]
        },
        "awards": awards,
        "enrolled": sorted(cid for cid, row in courses.items() if row[COURSE["enrolled"]] == 1),
        "progress": {
            cid: row[COURSE["reported_progress"]]
            for cid, row in courses.items()
            if row[COURSE["reported_progress"]] is not None
        },
        "recent": recent,
        "last_event": (summary[SUMMARY["last_event_at"]], summary[SUMMARY["last_event_tz"]]),
        "events_counted": summary[SUMMARY["events_counted"]],
    }


def row_time(ms_value: int) -> float:
    """A time as rows hold it: epoch seconds, read by ClickHouse into ``DateTime64(3)``."""
    return ms_value / 1000


def reference(events: Sequence[ParsedEvent]) -> dict[str, Any]:
    """docs/api.md § Metric rules applied naively: dedupe by eventId, sort by occurredAt, replay."""
    unique: dict[str, ParsedEvent] = {}
    for parsed in events:
        unique.setdefault(parsed.event_id, parsed)  # the first arrival of an id counts
    ordered = sorted(unique.values(), key=lambda p: (p.occurred_ms, p.event_id))

    first_completion: dict[tuple[str, str], str] = {}
    best: dict[tuple[str, str], float] = {}
    awards: dict[str, int] = {}
    daily: dict[tuple[dt.date, str], list[Any]] = defaultdict(lambda: [0.0, 0, 0, 0])
    active: set[dt.date] = set()
    last_activity: dict[str, int] = {}
    last_unenroll: dict[str, int] = {}
    progress: dict[str, float] = {}
    total = 0
    reached: list[float] = []
    for p in ordered:
        e = p.event
        cid = e.course_id
        if e.type == "unenrolled":
            last_unenroll[cid] = p.occurred_ms
        else:
            last_activity[cid] = p.occurred_ms
        if e.progress is not None:
            progress[cid] = e.progress
        points = 0
        if e.type == "lesson_progress":
            day = daily[(p.local_date, cid)]
            day[0] += e.time_spent
            if e.completed:
                active.add(p.local_date)
                if (cid, e.lesson_id) not in first_completion:
                    first_completion[(cid, e.lesson_id)] = e.event_id  # type: ignore[index]
                    points = 10
                    day[1] += 1
        elif e.type == "quiz_completed":
            day = daily[(p.local_date, cid)]
            day[0] += e.time_spent
            day[3] += 1
            key = (cid, e.quiz_id or "")
            previous = best.get(key, 0.0)
            new_best = max(previous, e.score or 0.0)
            best[key] = new_best
            points = math.floor(new_best / 10) - math.floor(previous / 10)
        if e.type in ("lesson_progress", "quiz_completed"):
            awards[e.event_id] = points
            daily[(p.local_date, cid)][2] += points
            for _ in range((total + points) // 100 - total // 100):
                reached.append(row_time(p.occurred_ms))
            total += points

    completed_lessons: dict[str, int] = defaultdict(int)
    for cid, _ in first_completion:
        completed_lessons[cid] += 1
    newest = ordered[::-1]
    return {
        "total_points": total,
        "total_points_state": total,
        "level": total // 100 + 1,
        "level_reached": reached,
        "daily": {key: (round(v[0], 9), v[1], v[2], v[3]) for key, v in daily.items()},
        "active_days": sorted(active),
        "first_completions": first_completion,
        "completed_lessons": dict(completed_lessons),
        "awards": awards,
        "enrolled": sorted(
            cid for cid, when in last_activity.items() if last_unenroll.get(cid, when) <= when
        ),
        "progress": progress,
        "recent": [
            (
                p.event_id,
                p.event.type,
                p.event.course_id,
                p.event.lesson_id,
                p.event.quiz_id,
                p.occurred_ms,
                awards.get(p.event_id, 0),
            )
            for p in newest[:10]
        ],
        "last_event": (row_time(newest[0].occurred_ms), newest[0].zone_label),
        "events_counted": len(ordered),
    }


def orders(
    events: Sequence[ParsedEvent], *, max_permutations: int = 5040, shuffles: int = 300
) -> Iterator[tuple[ParsedEvent, ...]]:
    """Every arrival order when there are few, else many seeded shuffles (+ sorted, reversed)."""
    if math.factorial(len(events)) <= max_permutations:
        yield from itertools.permutations(events)
        return
    by_time = sorted(events, key=lambda p: (p.occurred_ms, p.event_id))
    yield tuple(by_time)
    yield tuple(reversed(by_time))
    rng = random.Random(20261126)
    shuffled = list(events)
    for _ in range(shuffles):
        rng.shuffle(shuffled)
        yield tuple(shuffled)


def apply_flushing(
    events: Iterable[ParsedEvent],
) -> tuple[StudentState, dict[Any, list[Any]], dict[Any, list[Any]]]:
    """Apply one event at a time, writing only the rows marked dirty (as the worker does)."""
    state = StudentState(student_id="s1")
    daily: dict[Any, list[Any]] = {}
    courses: dict[Any, list[Any]] = {}
    for parsed in events:
        state.apply(parsed)
        daily.update({(row[1], row[2]): row for row in rows.daily_rows(state, 1)})
        courses.update({row[1]: row for row in rows.course_rows(state, NOW, 1)})
        state.clear_dirty()
    return state, daily, courses


def assert_order_independent(events: Sequence[ParsedEvent]) -> dict[str, Any]:
    """Every arrival order gives the reference result; returns it.

    The rows written incrementally (only the dirty ones after each event) must
    also end equal to the rows recomputed from the final state: a late event
    that changes an earlier day must mark that day for rewriting.
    """
    expected = reference(events)
    baseline: tuple[Any, ...] | None = None
    for order in orders(events):
        arrival = [p.event_id for p in order]
        state, written_daily, written_courses = apply_flushing(order)
        assert written_daily == all_daily_rows(state), f"stale daily rows after {arrival}"
        assert written_courses == all_course_rows(state), f"stale course rows after {arrival}"
        # every column of every row (times, sums...) is the same whatever the order
        # (the minutes used in the scenarios are exact binary fractions, so sums are exact)
        full = (written_daily, written_courses, rows.summary_row(state, NOW, 1))
        baseline = baseline or full
        assert full == baseline, f"rows differ after {arrival}"
        got = snapshot(state, events)
        if got != expected:
            diff = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
            pytest.fail(f"arrival order {arrival} differs (got, expected): {diff}")
    return expected


# ------------------------------------------------------------------ order scenarios

SCENARIOS = {
    "late-earlier-first-completion": [
        lesson("a", at(20), "l1", minutes=10),
        lesson("b", at(22), "l1", minutes=5),
        lesson("c", at(21), "l2", minutes=7.5),
        lesson("d", at(21, 13), "l2", completed=False, minutes=2.25),
        enroll("e", at(19)),
    ],
    "quiz-retakes": [
        quiz("q-55", at(20), 55, minutes=4),
        quiz("q-85", at(21), 85),
        quiz("q-70", at(22), 70),
        quiz("q-85-again", at(23), 85),
        quiz("q-90", at(24), 90),
        quiz("q-other-85", at(22, 9), 85, "q2"),
        quiz("q-other-course-95", at(22, 10), 95, course="c2"),
    ],
    "enroll-unenroll-re-enroll": [
        enroll("en1", at(20)),
        lesson("l-c1", at(21), "l1"),
        unenroll("un1", at(22)),
        enroll("en2", at(23)),
        unenroll("un-c2", at(22), course="c2"),
        enroll("en-c2", at(21), course="c2"),
        unenroll("un-c3", at(20), course="c3"),
    ],
    "progress-fallback": [
        lesson("p1", at(20), "l1", progress=10),
        lesson("p2", at(22), "l2", progress=60),
        lesson("p3", at(23), "l3", completed=False),  # carries no progress
        enroll("p4", at(21), progress=30),
        lesson("p5", at(24), "l1", course="c2", progress=0),
        lesson("p6", at(19), "l2", course="c2", progress=90),
    ],
    "same-instant-ties": [
        lesson("t-b", at(20), "l1"),
        lesson("t-a", at(20), "l1"),
        quiz("t-y", at(20), 70),
        quiz("t-x", at(20), 70),
        unenroll("t-u", at(20, 12)),
        quiz("t-z", at(20), 90),
    ],
    "duplicates-in-stream": [
        lesson("d1", at(20), "l1", minutes=10),
        lesson("d1", at(20), "l1", minutes=10),
        quiz("d2", at(21), 60),
        quiz("d2", at(21), 60),
        lesson("d3", at(19), "l1", minutes=3),
    ],
    "local-days-in-zones": [
        lesson("z1", "2026-11-20T23:30:00Z", "l1", minutes=10, tz="Asia/Tokyo"),  # 21st
        lesson("z2", "2026-11-20T23:30:00Z", "l2", minutes=20, tz="America/Los_Angeles"),  # 20th
        lesson("z3", "2026-11-21T01:00:00+05:30", "l3", minutes=5),  # 21st in +05:30
        quiz("z4", "2026-11-21T00:30:00-03:00", 50, minutes=1),  # 21st in -03:00
    ],
    "many-events-level-and-recent": [
        *(lesson(f"m{i:02d}", at(10 + i), f"l{i}", minutes=15) for i in range(9)),
        quiz("m-quiz-a", at(12, 18), 55),
        quiz("m-quiz-b", at(16, 18), 95),
        lesson("m-repeat", at(25), "l0", minutes=5),
        lesson("m-late-first", at(9), "l5", minutes=5),
        quiz("m-quiz-c", at(26), 100, "q2", course="c2"),
        enroll("m-enroll-c3", at(26, 13), course="c3"),
        unenroll("m-unenroll-c3", at(27), course="c3"),
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_any_arrival_order_gives_the_occurred_at_order_result(name: str) -> None:
    assert_order_independent(SCENARIOS[name])


def test_reference_of_the_late_completion_scenario_by_hand() -> None:
    """The reference itself, checked by hand on one scenario (so it can be trusted)."""
    expected = reference(SCENARIOS["late-earlier-first-completion"])
    assert expected["total_points"] == 20
    assert expected["daily"] == {
        (dt.date(2026, 11, 20), "c1"): (10.0, 1, 10, 0),
        (dt.date(2026, 11, 22), "c1"): (5.0, 0, 0, 0),
        (dt.date(2026, 11, 21), "c1"): (9.75, 1, 10, 0),
    }
    assert expected["active_days"] == [dt.date(2026, 11, d) for d in (20, 21, 22)]
    assert expected["awards"] == {"a": 10, "b": 0, "c": 10, "d": 0}
    assert [item[0] for item in expected["recent"]] == ["b", "d", "c", "a", "e"]


# ----------------------------------------------------------------------- duplicates


def test_same_event_twice_counts_once() -> None:
    state = StudentState(student_id="s1")
    first = lesson("e1", at(20), minutes=30)
    assert state.apply(first) is True
    assert state.apply(first) is False
    assert state.events_counted == 1
    assert state.total_points() == 10
    row = all_daily_rows(state)[(dt.date(2026, 11, 20), "c1")]
    assert row[DAILY["minutes"]] == 30
    assert row[DAILY["completions"]] == 1


def test_duplicate_changes_nothing_and_marks_nothing_dirty() -> None:
    state = apply_all([lesson("e1", at(20), minutes=30)])
    before = orjson.dumps(state.to_dict())  # to_dict shares the state's lists: compare text
    state.clear_dirty()
    assert state.apply(lesson("e1", at(20), minutes=30)) is False
    assert orjson.dumps(state.to_dict()) == before
    assert not state.dirty and not state.dirty_days and not state.dirty_courses


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(lesson("e1", at(21), "l2", minutes=50), id="other-lesson-other-day"),
        pytest.param(quiz("e1", at(20), 100), id="a-quiz"),
        pytest.param(unenroll("e1", at(25)), id="an-unenrollment"),
        pytest.param(lesson("e1", at(20), minutes=30, course="c2"), id="other-course"),
    ],
)
def test_same_id_different_content_counts_once(second: ParsedEvent) -> None:
    """The first arrival of an eventId counts; a different payload with the id is ignored."""
    first = lesson("e1", at(20), minutes=30)
    state = apply_all([first, second])
    assert state.events_counted == 1
    assert snapshot(state, [first]) == reference([first])


# ------------------------------------------------------------ 4.1 first completions


def test_late_earlier_completion_moves_the_day_and_points() -> None:
    state = StudentState(student_id="s1")
    state.apply(lesson("later", at(22), minutes=5))
    daily = all_daily_rows(state)
    assert daily[(dt.date(2026, 11, 22), "c1")][DAILY["lessons_completed"]] == 1
    assert daily[(dt.date(2026, 11, 22), "c1")][DAILY["points"]] == 10
    state.clear_dirty()

    state.apply(lesson("earlier", at(20), minutes=3))  # arrives late, happened first
    changed = {(row[1], row[2]): row for row in rows.daily_rows(state, 2)}
    # both days are rewritten: the completion (and its 10 points) moved to the 20th
    assert set(changed) == {(dt.date(2026, 11, 20), "c1"), (dt.date(2026, 11, 22), "c1")}
    day20, day22 = changed[(dt.date(2026, 11, 20), "c1")], changed[(dt.date(2026, 11, 22), "c1")]
    assert (day20[DAILY["lessons_completed"]], day20[DAILY["points"]]) == (1, 10)
    assert (day22[DAILY["lessons_completed"]], day22[DAILY["points"]]) == (0, 0)
    assert (day20[DAILY["completions"]], day22[DAILY["completions"]]) == (1, 1)
    assert (day20[DAILY["minutes"]], day22[DAILY["minutes"]]) == (3, 5)
    assert state.total_points() == 10
    assert state.points_awarded("earlier") == 10
    assert state.points_awarded("later") == 0
    course = all_course_rows(state)["c1"]
    assert course[COURSE["completed_lessons"]] == 1
    assert course[COURSE["completion_times"]] == [row_time(ms(at(20)))]


def test_repeat_completions_count_for_active_days_not_points() -> None:
    state = apply_all(
        [
            lesson("r1", at(20)),
            lesson("r2", at(21)),
            lesson("r3", at(23)),
            lesson("r4", at(23, 18)),
        ]
    )
    assert state.total_points() == 10
    assert sorted(state.active_days) == [dt.date(2026, 11, d).toordinal() for d in (20, 21, 23)]
    daily = all_daily_rows(state)
    assert [
        daily[(dt.date(2026, 11, d), "c1")][DAILY["lessons_completed"]] for d in (20, 21, 23)
    ] == [
        1,
        0,
        0,
    ]
    assert daily[(dt.date(2026, 11, 23), "c1")][DAILY["completions"]] == 2
    summary = rows.summary_row(state, NOW, 1)
    assert summary[SUMMARY["active_days"]] == [dt.date(2026, 11, d) for d in (20, 21, 23)]


def test_incomplete_progress_is_activity_only() -> None:
    state = apply_all([lesson("i1", at(20), completed=False, minutes=12)])
    assert state.total_points() == 0 and not state.active_days
    row = all_daily_rows(state)[(dt.date(2026, 11, 20), "c1")]
    assert (row[DAILY["minutes"]], row[DAILY["lessons_completed"]], row[DAILY["completions"]]) == (
        12,
        0,
        0,
    )
    assert all_course_rows(state)["c1"][COURSE["completed_lessons"]] == 0
    assert all_course_rows(state)["c1"][COURSE["enrolled"]] == 1  # implicit enrollment


def test_same_lesson_id_in_two_courses_is_two_lessons() -> None:
    state = apply_all([lesson("x1", at(20), "l1"), lesson("x2", at(20), "l1", course="c2")])
    assert state.total_points() == 20


def test_minutes_count_on_the_local_date() -> None:
    """23:30Z is the next day in Tokyo: the minutes and the active day go there."""
    state = apply_all([lesson("tz1", "2026-11-20T23:30:00Z", minutes=40, tz="Asia/Tokyo")])
    assert set(all_daily_rows(state)) == {(dt.date(2026, 11, 21), "c1")}
    assert sorted(state.active_days) == [dt.date(2026, 11, 21).toordinal()]


def test_decimal_minutes_sum_the_same_in_any_order() -> None:
    events = [
        lesson(f"m{i}", at(20, 10 + i), completed=False, minutes=m)
        for i, m in enumerate([0.1, 0.2, 0.3])
    ]
    seen = set()
    for order in orders(events):
        state = apply_all(order)
        day = all_daily_rows(state)[(dt.date(2026, 11, 20), "c1")][DAILY["minutes"]]
        course = all_course_rows(state)["c1"][COURSE["time_spent_minutes"]]
        seen.add((day, course))
    assert seen == {(0.6, 0.6)}


# ---------------------------------------------------------------------- 4.3 quizzes

QUIZ_SEQUENCES = [
    # scores in occurredAt order -> points each attempt earns
    pytest.param([85], [8], id="85-gives-8"),
    pytest.param([85.5], [8], id="85.5-gives-8"),
    pytest.param([100], [10], id="100-gives-10"),
    pytest.param([9.9], [0], id="9.9-gives-0"),
    pytest.param([0], [0], id="0-gives-0"),
    pytest.param([99.99], [9], id="99.99-gives-9"),
    pytest.param([10], [1], id="10-gives-1"),
    pytest.param([55, 85], [5, 3], id="retake-higher-adds-improvement"),
    pytest.param([85, 55], [8, 0], id="retake-lower-adds-nothing"),
    pytest.param([85, 85], [8, 0], id="retake-equal-adds-nothing"),
    pytest.param([81, 89], [8, 0], id="retake-higher-same-tenth"),
    pytest.param([79, 80], [7, 1], id="retake-crosses-a-tenth"),
    pytest.param([55, 85, 70, 90], [5, 3, 0, 1], id="up-down-up"),
    pytest.param([30, 20, 10, 100], [3, 0, 0, 7], id="best-comes-last"),
    pytest.param([100, 100, 99], [10, 0, 0], id="perfect-first"),
]


@pytest.mark.parametrize(("scores", "awards"), QUIZ_SEQUENCES)
def test_quiz_points_in_any_order(scores: list[float], awards: list[int]) -> None:
    attempts = [quiz(f"a{i}", at(20 + i), score) for i, score in enumerate(scores)]
    for order in orders(attempts):
        state = apply_all(order)
        got = [state.points_awarded(f"a{i}") for i in range(len(scores))]
        assert got == awards, [p.event_id for p in order]
        assert state.total_points() == sum(awards) == math.floor(max(scores) / 10)
        daily = all_daily_rows(state)
        assert [
            daily[(dt.date(2026, 11, 20 + i), "c1")][DAILY["points"]] for i in range(len(scores))
        ] == awards
        assert sum(row[DAILY["quizzes_completed"]] for row in daily.values()) == len(scores)
        assert sum(row[DAILY["quiz_score_sum"]] for row in daily.values()) == pytest.approx(
            sum(scores)
        )


def test_late_earlier_higher_attempt_reassigns_points() -> None:
    state = apply_all([quiz("q55", at(20), 55), quiz("q85", at(23), 85)])
    assert [state.points_awarded(e) for e in ("q55", "q85")] == [5, 3]
    state.clear_dirty()

    state.apply(quiz("q90", at(21), 90))  # happened between them, arrives last
    awarded = {e: state.points_awarded(e) for e in ("q55", "q90", "q85")}
    assert awarded == {"q55": 5, "q90": 4, "q85": 0}
    assert state.total_points() == 9
    changed = {row[1]: row for row in rows.daily_rows(state, 2)}
    # the 23rd lost its 3 points: its row must be rewritten along with the 21st
    assert dt.date(2026, 11, 23) in changed and dt.date(2026, 11, 21) in changed
    assert changed[dt.date(2026, 11, 23)][DAILY["points"]] == 0
    assert changed[dt.date(2026, 11, 21)][DAILY["points"]] == 4
    assert changed[dt.date(2026, 11, 23)][DAILY["quizzes_completed"]] == 1


def test_late_earlier_lower_attempt_takes_the_first_points() -> None:
    state = apply_all([quiz("q85", at(23), 85), quiz("q55", at(20), 55)])
    assert state.points_awarded("q55") == 5
    assert state.points_awarded("q85") == 3


def test_quizzes_are_per_course_and_quiz() -> None:
    state = apply_all(
        [
            quiz("a", at(20), 85, "q1"),
            quiz("b", at(20), 85, "q2"),
            quiz("c", at(20), 85, "q1", course="c2"),
        ]
    )
    assert state.total_points() == 24


def test_attempts_that_can_never_earn_points_are_not_kept() -> None:
    """The state stays bounded: retakes at or below an earlier best are counted, not kept."""
    attempts = [quiz("best", at(1), 90)]
    attempts += [quiz(f"retake{i:02d}", at(2 + i % 20, i % 24), 90 - i % 3) for i in range(60)]
    for order in (attempts, attempts[::-1]):
        state = apply_all(order)
        assert [a.event_id for a in state.courses["c1"].quizzes["q1"]] == ["best"]
        assert sum(f.quizzes for f in state.days.values()) == 61
        assert state.total_points() == 9


# ------------------------------------------------------------------- 4.2 enrollment

ENROLLMENT_CASES = [
    pytest.param([enroll("e", at(20))], True, id="enrolled"),
    pytest.param([lesson("l", at(20), completed=False)], True, id="implicit-by-lesson"),
    pytest.param([quiz("q", at(20), 50)], True, id="implicit-by-quiz"),
    pytest.param([unenroll("u", at(20))], False, id="only-unenrolled"),
    pytest.param([enroll("e", at(20)), unenroll("u", at(21))], False, id="unenrolled-later"),
    pytest.param(
        [enroll("e1", at(20)), unenroll("u", at(21)), enroll("e2", at(22))], True, id="re-enrolled"
    ),
    pytest.param([unenroll("u", at(19)), enroll("e", at(20))], True, id="unenrolled-before"),
    pytest.param(
        [enroll("e", at(20)), lesson("l", at(22)), unenroll("u", at(21))],
        True,
        id="late-unenroll-dated-before-activity",
    ),
    pytest.param(
        [enroll("e", at(20)), quiz("q", at(21, 8), 50), unenroll("u", at(21, 8))],
        True,
        id="unenroll-same-instant-as-activity",
    ),
    pytest.param(
        [enroll("e", at(20)), unenroll("u", at(20))], True, id="unenroll-same-instant-as-enroll"
    ),
    pytest.param(
        [lesson("l", at(20)), unenroll("u", at(20, 12, 0, 1))],
        False,
        id="unenroll-one-second-after-activity",
    ),
    pytest.param(
        [enroll("e", at(20)), unenroll("u1", at(21)), unenroll("u2", at(22))],
        False,
        id="unenrolled-twice",
    ),
]


@pytest.mark.parametrize(("events", "enrolled"), ENROLLMENT_CASES)
def test_enrollment(events: list[ParsedEvent], enrolled: bool) -> None:
    for order in orders(events):
        state = apply_all(order)
        assert state.courses["c1"].enrolled is enrolled, [p.event_id for p in order]
        assert all_course_rows(state)["c1"][COURSE["enrolled"]] == int(enrolled)


def test_re_enrolling_restores_progress() -> None:
    events = [
        lesson("l1", at(20), "l1"),
        lesson("l2", at(21), "l2", progress=25),
        unenroll("u", at(22)),
    ]
    state = apply_all(events)
    row = all_course_rows(state)["c1"]
    assert row[COURSE["enrolled"]] == 0
    assert row[COURSE["completed_lessons"]] == 2  # history stays
    state.apply(enroll("e", at(23)))
    row = all_course_rows(state)["c1"]
    assert row[COURSE["enrolled"]] == 1
    assert (row[COURSE["completed_lessons"]], row[COURSE["reported_progress"]]) == (2, 25)
    assert state.total_points() == 20


def test_first_enrolled_at_is_the_earliest_enrollment_or_activity() -> None:
    state = apply_all([enroll("e", at(22)), unenroll("u", at(18)), lesson("l", at(20))])
    assert all_course_rows(state)["c1"][COURSE["first_enrolled_at"]] == row_time(ms(at(20)))


# --------------------------------------------------------------- 4.1 progress fallback


def test_reported_progress_latest_by_occurred_at_even_if_it_arrives_first() -> None:
    state = apply_all(
        [lesson("new", at(22), progress=60), lesson("old", at(20), "l2", progress=30)]
    )
    row = all_course_rows(state)["c1"]
    assert row[COURSE["reported_progress"]] == 60
    assert row[COURSE["reported_progress_at"]] == row_time(ms(at(22)))


def test_reported_progress_zero_is_a_value() -> None:
    state = apply_all([lesson("a", at(20), progress=50), lesson("b", at(21), "l2", progress=0)])
    assert all_course_rows(state)["c1"][COURSE["reported_progress"]] == 0


def test_event_without_progress_keeps_the_reported_value() -> None:
    state = apply_all([enroll("a", at(20), progress=40), lesson("b", at(21))])
    assert all_course_rows(state)["c1"][COURSE["reported_progress"]] == 40


def test_no_reported_progress_is_null() -> None:
    row = all_course_rows(apply_all([lesson("a", at(20))]))["c1"]
    assert row[COURSE["reported_progress"]] is None and row[COURSE["reported_progress_at"]] is None


# ------------------------------------------------------------------------ 4.3 level


def lessons_then_quiz(n_lessons: int, score: float | None) -> list[ParsedEvent]:
    events = [lesson(f"l{i:02d}", at(1 + i), f"lesson{i}") for i in range(n_lessons)]
    if score is not None:
        events.append(quiz("quiz", at(29), score))
    return events


@pytest.mark.parametrize(
    ("n_lessons", "score", "total", "level", "reached_days"),
    [
        pytest.param(0, None, 0, 1, [], id="0-points-level-1"),
        pytest.param(9, 99, 99, 1, [], id="99-points-level-1"),
        pytest.param(10, None, 100, 2, [10], id="100-points-level-2"),
        pytest.param(9, 100, 100, 2, [29], id="100-points-by-quiz"),
        pytest.param(10, 95, 109, 2, [10], id="109-points-level-2"),
        pytest.param(19, 100, 200, 3, [10, 29], id="200-points-level-3"),
        pytest.param(20, 5, 200, 3, [10, 20], id="200-points-by-lessons"),
    ],
)
def test_level_and_level_reached(
    n_lessons: int, score: float | None, total: int, level: int, reached_days: list[int]
) -> None:
    state = apply_all(lessons_then_quiz(n_lessons, score))
    summary = rows.summary_row(state, NOW, 1)
    assert summary[SUMMARY["total_points"]] == total
    assert summary[SUMMARY["level"]] == level
    assert summary[SUMMARY["level_reached_at"]] == [row_time(ms(at(d))) for d in reached_days]


def test_late_event_moves_the_level_reached_time() -> None:
    events = [lesson(f"l{i}", at(10 + i), f"lesson{i}") for i in range(10)]  # 100 on the 19th
    state = apply_all(events)
    assert rows.summary_row(state, NOW, 1)[SUMMARY["level_reached_at"]] == [row_time(ms(at(19)))]
    state.apply(lesson("early", at(5), "lesson-early"))  # now 100 is reached on the 18th
    summary = rows.summary_row(state, NOW, 1)
    assert summary[SUMMARY["level_reached_at"]] == [row_time(ms(at(18)))]
    assert summary[SUMMARY["total_points"]] == 110


@pytest.mark.parametrize(
    ("timeline", "reached"),
    [
        pytest.param([], [], id="empty"),
        pytest.param([(1, "a", 10)] * 9, [], id="90"),
        pytest.param([(i, "a", 10) for i in range(1, 11)], [10], id="exactly-100"),
        pytest.param([(1, "a", 95), (2, "b", 4), (3, "c", 1)], [3], id="99-then-1"),
        pytest.param([(1, "a", 95), (2, "b", 10), (3, "c", 100)], [2, 3], id="two-levels"),
        pytest.param([(7, "a", 250)], [7, 7], id="one-award-two-levels"),
        pytest.param([(1, "a", 0), (2, "b", 100)], [2], id="zero-awards-ignored"),
    ],
)
def test_level_reached_helper(timeline: list[tuple[int, str, int]], reached: list[int]) -> None:
    assert rows.level_reached(timeline) == reached


# --------------------------------------------------------------- recent activity


def recent_ids(state: StudentState) -> list[str]:
    return [item["eventId"] for item in rows.recent_activity(state)]


def test_recent_activity_newest_first_capped_at_10() -> None:
    events = [lesson(f"e{i:02d}", at(1 + i), f"l{i}") for i in range(12)]
    expected = [f"e{i:02d}" for i in range(11, 1, -1)]
    for order in orders(events, shuffles=50):
        assert recent_ids(apply_all(order)) == expected


def test_recent_activity_late_old_event_stays_out_new_one_gets_in() -> None:
    state = apply_all([lesson(f"e{i:02d}", at(10 + i), f"l{i}") for i in range(10)])
    state.apply(lesson("old", at(1), "l-old"))
    assert "old" not in recent_ids(state)
    state.apply(lesson("mid", at(14, 18), "l-mid"))
    ids = recent_ids(state)
    assert len(ids) == 10 and ids[5] == "mid" and "e00" not in ids


def test_recent_activity_items() -> None:
    state = apply_all(
        [
            lesson("a", "2026-11-20T10:00:00.250Z", "l1"),
            quiz("b", at(21), 72, "q9"),
            unenroll("c", at(22), course="c2"),
        ]
    )
    assert rows.recent_activity(state) == [
        {
            "eventId": "c",
            "type": "unenrolled",
            "courseId": "c2",
            "lessonId": None,
            "quizId": None,
            "occurredAt": "2026-11-22T12:00:00Z",
            "pointsAwarded": 0,
        },
        {
            "eventId": "b",
            "type": "quiz_completed",
            "courseId": "c1",
            "lessonId": None,
            "quizId": "q9",
            "occurredAt": "2026-11-21T12:00:00Z",
            "pointsAwarded": 7,
        },
        {
            "eventId": "a",
            "type": "lesson_progress",
            "courseId": "c1",
            "lessonId": "l1",
            "quizId": None,
            "occurredAt": "2026-11-20T10:00:00.250Z",
            "pointsAwarded": 10,
        },
    ]


def test_points_awarded_follow_a_late_event() -> None:
    """A late earlier completion / better attempt takes the points from the shown event."""
    state = apply_all([lesson("shown", at(22), "l1"), quiz("quiz85", at(23), 85)])
    shown = {i["eventId"]: i["pointsAwarded"] for i in rows.recent_activity(state)}
    assert shown == {"shown": 10, "quiz85": 8}
    state.apply(lesson("earlier", at(21), "l1"))
    state.apply(quiz("quiz90", at(21, 18), 90))
    shown = {i["eventId"]: i["pointsAwarded"] for i in rows.recent_activity(state)}
    assert shown == {"shown": 0, "quiz85": 0, "earlier": 10, "quiz90": 9}


def test_last_event_and_its_zone() -> None:
    state = apply_all(
        [
            lesson("a", "2026-11-22T10:00:00+05:30", "l1"),
            lesson("b", "2026-11-20T10:00:00Z", "l2", tz="Europe/Paris"),
        ]
    )
    summary = rows.summary_row(state, NOW, 1)
    assert summary[SUMMARY["last_event_at"]] == row_time(ms("2026-11-22T04:30:00Z"))
    assert summary[SUMMARY["last_event_tz"]] == "+05:30"


# --------------------------------------------------------------------- maintenance


def test_prune_recent_ids() -> None:
    state = apply_all([lesson("old", at(1)), lesson("edge", at(10)), lesson("new", at(20), "l2")])
    state.clear_dirty()
    state.prune_recent_ids(ms(at(10)))  # strictly before the cutoff goes
    assert set(state.recent_ids) == {"edge", "new"}
    assert state.dirty is True
    assert not state.seen("old") and state.seen("edge")
    # what the ids were for is unchanged
    assert state.total_points() == 20 and state.events_counted == 3


def test_prune_nothing_to_prune_keeps_clean() -> None:
    state = apply_all([lesson("new", at(20))])
    state.clear_dirty()
    state.prune_recent_ids(ms(at(1)))
    assert set(state.recent_ids) == {"new"} and state.dirty is False


def test_pruned_id_is_no_longer_recognised_by_the_state() -> None:
    """Older duplicates are the caller's job (``learning_events``): the state forgets them."""
    old = lesson("old", at(1), minutes=5)
    state = apply_all([old])
    state.prune_recent_ids(ms(at(2)))
    assert state.apply(old) is True
    assert state.events_counted == 2


def round_trip(state: StudentState) -> StudentState:
    blob = orjson.dumps(state.to_dict())
    return StudentState.from_dict(state.student_id, orjson.loads(blob))


def test_to_dict_from_dict_round_trip() -> None:
    first = SCENARIOS["many-events-level-and-recent"] + SCENARIOS["quiz-retakes"]
    state = apply_all(first)
    state.partition = 7
    state.version = 42
    restored = round_trip(state)
    assert restored.to_dict() == state.to_dict()
    assert (restored.partition, restored.version) == (7, 42)
    assert snapshot(restored, first) == snapshot(state, first)

    more = [
        *SCENARIOS["enroll-unenroll-re-enroll"],
        lesson("late-first", at(2), "l3", minutes=4),  # an earlier first completion
        quiz("late-best", at(20, 6), 99),  # re-assigns quiz points
        first[0],  # a duplicate
    ]
    for parsed in more:
        assert state.apply(parsed) == restored.apply(parsed)
    assert restored.to_dict() == state.to_dict()
    everything = first + more
    assert snapshot(restored, everything) == snapshot(state, everything) == reference(everything)


def test_snapshots_with_six_field_recent_events_still_load() -> None:
    """Snapshots written before the recent events kept their occurredAt text (six
    fields) give the same recent activity once loaded."""
    events = SCENARIOS["many-events-level-and-recent"]
    state = apply_all(events)
    data = orjson.loads(orjson.dumps(state.to_dict()))
    data["r"] = [item[:6] for item in data["r"]]
    older = StudentState.from_dict(state.student_id, data)
    assert older.recent == state.recent
    assert rows.recent_activity(older) == rows.recent_activity(state)


def test_round_trip_of_an_empty_state() -> None:
    state = StudentState(student_id="s1")
    assert round_trip(state).to_dict() == state.to_dict()


# -------------------------------------------------------------------- rows helpers


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (ms("2026-11-26T09:00:00Z"), "2026-11-26T09:00:00Z"),
        (ms("2026-11-26T09:00:00Z") + 5, "2026-11-26T09:00:00.005Z"),
        (ms("2026-11-26T09:00:00Z") + 999, "2026-11-26T09:00:00.999Z"),
    ],
)
def test_iso_ms(value: int, text: str) -> None:
    assert rows.iso_ms(value) == text


def test_iso_ms_agrees_with_datetime_formatting() -> None:
    rng = random.Random(11)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for _ in range(20_000):
        value = rng.randrange(-2_208_988_800_000, 4_102_444_800_000)  # years 1900..2100
        if rng.random() < 0.3:
            value -= value % 1000  # whole seconds: no fraction in the text
        moment = epoch + dt.timedelta(milliseconds=value)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        expected = f"{text}.{value % 1000:03d}Z" if value % 1000 else f"{text}Z"
        assert rows.iso_ms(value) == expected, value


def test_seconds_are_written_as_the_milliseconds_decimals() -> None:
    """orjson writes ``ms / 1000`` as the milliseconds' own decimals: ClickHouse stores ``ms``."""
    rng = random.Random(12)
    for _ in range(20_000):
        value = rng.randrange(-2_208_988_800_000, 253_402_300_799_999)  # years 1900..9999
        if rng.random() < 0.3:
            value -= value % 1000
        text = orjson.dumps(rows.seconds(value)).decode()
        assert Decimal(text) * 1000 == value, (value, text)
    assert rows.seconds(None) is None


def test_rows_match_columns() -> None:
    state = apply_all(SCENARIOS["many-events-level-and-recent"])
    assert all(
        len(r) == len(rows.COLUMNS["student_course_daily"]) for r in all_daily_rows(state).values()
    )
    assert all(
        len(r) == len(rows.COLUMNS["student_courses"]) for r in all_course_rows(state).values()
    )
    assert len(rows.summary_row(state, NOW, 3)) == len(rows.COLUMNS["student_summary"])
    assert len(rows.state_row(state, 3)) == len(rows.COLUMNS["student_state"])
    parsed = SCENARIOS["many-events-level-and-recent"][0]
    assert len(rows.event_row(parsed, 0, 0, NOW, 3)) == len(rows.COLUMNS["learning_events"])
