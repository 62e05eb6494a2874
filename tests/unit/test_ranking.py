"""The leaderboard rules of ``api.ranking`` (docs/api.md § Leaderboards), pure logic.

Daily points come from the worker's own rules (``streams.student_state``) where a
case is about events (time zones, late arrivals), so the cases check the two
together; every expected number is worked out by hand from the rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from api.ranking import (
    Ranking,
    RankingKey,
    answer_body,
    period_dates,
    period_totals,
    ranking_key,
)
from api.timeutil import local_today
from schemas.events import parse_event, zone
from streams.student_state import StudentState

D = dt.date(2026, 11, 26)


def no_names(_student: str) -> str | None:
    return None


def body(ranking: Ranking, requester: str = "x", *, limit: int = 10, **kw: Any) -> dict[str, Any]:
    key = kw.pop("key", ranking_key("week", None, D))
    return answer_body(
        ranking, key, D, limit, requester,
        show_ids=kw.pop("show_ids", False), visible_name=kw.pop("names", no_names),
    )  # fmt: skip


# ------------------------------------------------------------------ ranks
def test_ties_share_a_competition_rank_and_are_listed_by_student_id() -> None:
    ranking = Ranking.from_totals([("d", 10), ("c", 20), ("a", 30), ("b", 20), ("e", 0)])
    answer = body(ranking, "c")
    listed = [(e["rank"], e["name"], e["points"]) for e in answer["entries"]]
    assert listed == [
        (1, "Learner 1", 30),
        (2, "Learner 2", 20),  # b before c: same points, listed by id
        (2, "Learner 2", 20),
        (4, "Learner 4", 10),
    ]
    assert [e["isMe"] for e in answer["entries"]] == [False, False, True, False]
    assert answer["ranked"] == 4  # e has no points: not ranked
    # c: 1 of 4 ranked learners (d) has fewer points
    assert answer["me"] == {"rank": 2, "points": 20, "percentile": 25.0}


@pytest.mark.parametrize(
    ("student", "expected"),
    [
        ("a", {"rank": 1, "points": 30, "percentile": 75.0}),
        ("b", {"rank": 2, "points": 20, "percentile": 25.0}),
        ("d", {"rank": 4, "points": 10, "percentile": 0.0}),
        ("e", {"rank": None, "points": 0, "percentile": 0.0}),  # zero points
        ("nobody", {"rank": None, "points": 0, "percentile": 0.0}),
    ],
)
def test_my_standing(student: str, expected: dict[str, Any]) -> None:
    ranking = Ranking.from_totals([("a", 30), ("b", 20), ("c", 20), ("d", 10), ("e", 0)])
    assert body(ranking, student)["me"] == expected


def test_percentile_has_one_decimal() -> None:
    # 2 of 3 ranked learners have fewer points than m: 66.666… → 66.7
    ranking = Ranking.from_totals([("m", 9), ("n", 5), ("o", 1)])
    assert body(ranking, "m")["me"]["percentile"] == 66.7


def test_all_tied_ranks_everyone_first_with_percentile_zero() -> None:
    ranking = Ranking.from_totals([(f"s{i}", 7) for i in range(5)])
    answer = body(ranking, "s3")
    assert {e["rank"] for e in answer["entries"]} == {1}
    assert answer["me"] == {"rank": 1, "points": 7, "percentile": 0.0}


def test_limit_cuts_the_list_not_the_count() -> None:
    ranking = Ranking.from_totals([(f"s{i:02d}", 100 - i) for i in range(30)])
    answer = body(ranking, "s29", limit=3)
    assert [e["points"] for e in answer["entries"]] == [100, 99, 98]
    assert answer["ranked"] == 30
    assert answer["me"]["rank"] == 30


def test_empty_ranking() -> None:
    answer = body(Ranking.from_totals([]), "a")
    assert answer["entries"] == [] and answer["ranked"] == 0
    assert answer["me"] == {"rank": None, "points": 0, "percentile": 0.0}


# --------------------------------------------------------------- privacy
def test_names_and_ids_only_where_allowed() -> None:
    ranking = Ranking.from_totals([("ann", 30), ("bob", 20), ("cy", 10)])
    names = {"ann": "Ann"}.get  # bob and cy did not choose to be visible
    as_student = body(ranking, "cy", names=names)
    assert [e["name"] for e in as_student["entries"]] == ["Ann", "Learner 2", "Learner 3"]
    assert [e.get("studentId") for e in as_student["entries"]] == [None, None, "cy"]
    assert "bob" not in orjson.dumps(as_student).decode()
    as_admin = body(ranking, "root", names=names, show_ids=True)
    assert [e["studentId"] for e in as_admin["entries"]] == ["ann", "bob", "cy"]
    assert [e["name"] for e in as_admin["entries"]] == ["Ann", "Learner 2", "Learner 3"]


# ---------------------------------------------------------------- periods
def test_period_dates_and_keys() -> None:
    assert period_dates("week", D) == (dt.date(2026, 11, 20), D)
    assert period_dates("month", D) == (dt.date(2026, 10, 28), D)
    assert period_dates("all", D) == (None, D)
    assert ranking_key("all", None, D) == ranking_key("all", None, D + dt.timedelta(1))
    assert ranking_key("week", "c1", D) == RankingKey("week", "c1", dt.date(2026, 11, 20), D)
    answer = body(Ranking.from_totals([]), key=ranking_key("all", "c1", D))
    assert (answer["period"], answer["courseId"], answer["from"], answer["to"]) == (
        "all", "c1", None, "2026-11-26",
    )  # fmt: skip


def test_a_student_in_several_courses() -> None:
    rows = [
        ("s1", "c1", D, 10), ("s1", "c2", D, 8), ("s2", "c1", D, 15),
        ("s2", "c2", D - dt.timedelta(10), 40),  # outside the week
    ]  # fmt: skip
    week = ranking_key("week", None, D)
    assert period_totals(rows, week) == {"s1": 18, "s2": 15}
    assert period_totals(rows, ranking_key("week", "c1", D)) == {"s1": 10, "s2": 15}
    assert period_totals(rows, ranking_key("week", "c2", D)) == {"s1": 8}
    assert period_totals(rows, ranking_key("all", None, D)) == {"s1": 18, "s2": 55}
    in_c1 = Ranking.from_totals(period_totals(rows, ranking_key("week", "c1", D)).items())
    assert [(e["rank"], e["points"]) for e in body(in_c1)["entries"]] == [(1, 15), (2, 10)]


class Learner:
    """One learner's events through the worker's rules, as daily point rows."""

    def __init__(self, student_id: str, timezone: str | None = None) -> None:
        self.state = StudentState(student_id)
        self.timezone = timezone
        self.count = 0

    def send(self, kind: str, at: str, **fields: Any) -> None:
        self.count += 1
        event = {
            "eventId": f"{self.state.student_id}-{self.count}", "type": kind,
            "studentId": self.state.student_id, "courseId": fields.pop("courseId", "c1"),
            "occurredAt": at, **fields,
        }  # fmt: skip
        if self.timezone:
            event["timezone"] = self.timezone
        now = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
        parsed = parse_event(orjson.dumps(event), now=now, max_future=dt.timedelta(days=1))
        assert self.state.apply(parsed)

    def rows(self) -> list[tuple[str, str, dt.date, int]]:
        """(student, course, local date, points) of every (date, course) with activity,
        as the worker writes ``student_course_daily`` (0 points included)."""
        state = self.state
        return [
            (state.student_id, course, dt.date.fromordinal(day),
             state.points_by_day(course).get(day, (0, 0))[1])
            for day, course in state.days
        ]  # fmt: skip


def lesson(learner: Learner, at: str, lesson_id: str = "l1") -> None:
    learner.send("lesson_progress", at, lessonId=lesson_id, completed=True)


def today_in(name: str, now: dt.datetime) -> dt.date:
    found = zone(name)
    assert found is not None
    return local_today(now, found)


def test_period_edges_follow_each_requesters_today() -> None:
    now = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
    new_york, tokyo = today_in("America/New_York", now), today_in("Asia/Tokyo", now)
    assert (new_york, tokyo) == (dt.date(2026, 11, 26), dt.date(2026, 11, 27))
    paris = Learner("paris", "Europe/Paris")
    lesson(paris, "2026-11-20T22:30:00Z")  # 23:30 on the 20th in Paris
    kiritimati = Learner("kiri", "Pacific/Kiritimati")
    lesson(kiritimati, "2026-11-26T11:00:00Z")  # 01:00 on the 27th at UTC+14
    offset = Learner("offset")  # no zone: the offset of occurredAt decides
    lesson(offset, "2026-11-21T00:30:00+09:00")  # the 21st (the 20th in UTC)
    rows = paris.rows() + kiritimati.rows() + offset.rows()
    # New York's week is the 20th..26th, Tokyo's the 21st..27th.
    assert period_totals(rows, ranking_key("week", None, new_york)) == {"paris": 10, "offset": 10}
    assert period_totals(rows, ranking_key("week", None, tokyo)) == {"kiri": 10, "offset": 10}
    # The month's first date: the 28th of October in New York, the 29th in Tokyo.
    october = Learner("oct", "America/Los_Angeles")
    lesson(october, "2026-10-29T06:30:00Z")  # 23:30 on the 28th in Los Angeles
    assert period_totals(october.rows(), ranking_key("month", None, new_york)) == {"oct": 10}
    assert period_totals(october.rows(), ranking_key("month", None, tokyo)) == {}


def test_a_late_earlier_completion_moves_points_into_the_period() -> None:
    # New York's today is the 26th. A learner at UTC+14 completes a lesson on their
    # 27th (after that today: outside New York's week); a late event shows they had
    # completed it on their 26th: its 10 points move into the week.
    now = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
    week = ranking_key("week", None, today_in("America/New_York", now))
    learner = Learner("kiri", "Pacific/Kiritimati")
    lesson(learner, "2026-11-26T11:00:00Z")  # the 27th, 01:00
    assert period_totals(learner.rows(), week) == {}  # no activity dated in the week
    lesson(learner, "2026-11-26T09:00:00Z")  # the 26th, 23:00: arrives late, is earlier
    assert period_totals(learner.rows(), week) == {"kiri": 10}


def test_a_late_better_quiz_attempt_moves_points_out_of_the_period() -> None:
    # A 90 % attempt this week earned 9 points; an 95 % attempt from three weeks ago
    # arrives late: it earns the 9 points (on its own day), this week's attempt none.
    learner = Learner("quiz", "Europe/Paris")
    learner.send("quiz_completed", "2026-11-24T10:00:00Z", quizId="q1", score=90)
    week, ever = ranking_key("week", None, D), ranking_key("all", None, D)
    assert period_totals(learner.rows(), week) == {"quiz": 9}
    learner.send("quiz_completed", "2026-11-03T10:00:00Z", quizId="q1", score=95)
    assert period_totals(learner.rows(), week) == {"quiz": 0}
    assert period_totals(learner.rows(), ever) == {"quiz": 9}
    ranking = Ranking.from_totals(period_totals(learner.rows(), week).items())
    assert body(ranking, "quiz")["me"] == {"rank": None, "points": 0, "percentile": 0.0}
