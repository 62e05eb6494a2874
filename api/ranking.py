"""The leaderboard rules (docs/api.md § Leaderboards), without I/O.

- A period is a range of learner-local dates ending at the requester's today:
  ``week`` the last 7, ``month`` the last 30, ``all`` every date (no bound at
  either end: an event dated ahead of the requester's today counts too).
- A learner's points in a period are the points (§ Metric rules) awarded by
  events whose local date is in the period, of one course or of all.
- Learners with 0 points are not ranked. Ranks are competition ranks (1, 2, 2,
  4): one more than the number of learners with more points; ties are listed
  by ``studentId``.
- ``percentile`` is the share of ranked learners with fewer points than the
  requester, in percent, 1 decimal (Python's ``round``); 0 when not ranked.
- Privacy: a learner shows under the name they chose while visible, else as
  ``Learner <rank>``; ``studentId`` is shown to admins and on one's own row only.

``Ranking`` is one period's standings, immutable once built, so the API's
kept rankings (``api.leaderboard_cache``) are read without locks.
"""

from __future__ import annotations

import datetime as dt
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from operator import neg
from sys import intern
from typing import Any, Literal, NamedTuple

Period = Literal["week", "month", "all"]
PERIODS: tuple[Period, ...] = ("week", "month", "all")
PERIOD_DAYS: dict[str, int] = {"week": 7, "month": 30}
DEFAULT_LIMIT = 10
MAX_LIMIT = 100


class RankingKey(NamedTuple):
    """What one ranking is of: a period's dates (None: unbounded) and a course (None: all)."""

    period: Period
    course_id: str | None
    since: dt.date | None
    until: dt.date | None


def period_dates(period: Period, today: dt.date) -> tuple[dt.date | None, dt.date]:
    """``from`` and ``to`` of a period as the answer shows them (``from`` None for ``all``)."""
    days = PERIOD_DAYS.get(period)
    return (None if days is None else today - dt.timedelta(days=days - 1)), today


def ranking_key(period: Period, course_id: str | None, today: dt.date) -> RankingKey:
    """The key of the ranking a request needs: ``all`` does not depend on today."""
    if period == "all":
        return RankingKey(period, course_id, None, None)
    since, until = period_dates(period, today)
    return RankingKey(period, course_id, since, until)


def in_period(key: RankingKey, course_id: str, local_date: dt.date) -> bool:
    """True when a (course, local date)'s points count in the ranking ``key``."""
    if key.course_id is not None and course_id != key.course_id:
        return False
    if key.since is not None and local_date < key.since:
        return False
    return key.until is None or local_date <= key.until


def period_totals(rows: Iterable[tuple[str, str, dt.date, int]], key: RankingKey) -> dict[str, int]:
    """Points per student in the period of ``key`` from daily rows
    (student, course, local date, points): the rule the stored query follows."""
    totals: dict[str, int] = {}
    for student_id, course_id, local_date, points in rows:
        if in_period(key, course_id, local_date):
            totals[student_id] = totals.get(student_id, 0) + points
    return totals


class Standing(NamedTuple):
    """The requester's place: rank (None when not ranked), points, percentile."""

    rank: int | None
    points: int
    percentile: float


class Ranking:
    """Ranked learners by points (most first), ties by ``studentId``; immutable."""

    __slots__ = ("_position", "ids", "points")

    def __init__(self, ids: Sequence[str], points: Sequence[int]) -> None:
        """From learners already in ranking order with points > 0 (``from_totals``
        sorts; the store's query orders the same way). Ids are interned: the rankings
        of one process share one copy of each learner's id."""
        self.ids = list(map(intern, ids))
        self.points = array("q", points)  # most first
        self._position = dict(zip(self.ids, range(len(self.ids)), strict=True))

    @classmethod
    def from_totals(cls, totals: Iterable[tuple[str, int]]) -> Ranking:
        """Rank (student, points) pairs: learners with no points left out."""
        ordered = sorted((-points, sid) for sid, points in totals if points > 0)
        return cls([sid for _, sid in ordered], [-negated for negated, _ in ordered])

    @property
    def ranked(self) -> int:
        """How many learners are ranked."""
        return len(self.ids)

    def rank_of(self, points: int) -> int:
        """The competition rank of a score: one more than the learners with more points."""
        # ``points`` descend, so their negations ascend: bisect counts the learners above.
        return bisect_left(self.points, -points, key=neg) + 1

    def fewer_than(self, points: int) -> int:
        """How many ranked learners have fewer points than ``points``."""
        return len(self.points) - bisect_right(self.points, -points, key=neg)

    def standing(self, student_id: str) -> Standing:
        """Where ``student_id`` stands (``Standing(None, 0, 0.0)`` when not ranked)."""
        position = self._position.get(student_id)
        if position is None:
            return Standing(None, 0, 0.0)
        points = self.points[position]
        fewer = self.fewer_than(points)
        return Standing(self.rank_of(points), points, round(100 * fewer / self.ranked, 1))

    def top(self, limit: int) -> list[tuple[int, str, int]]:
        """The first ``limit`` learners as (rank, student, points)."""
        return [
            (self.rank_of(self.points[i]), self.ids[i], self.points[i])
            for i in range(min(limit, self.ranked))
        ]


def display_name(rank: int, chosen: str | None) -> str:
    """What others see: the chosen name while visible (``chosen`` not None), else
    ``Learner <rank>``."""
    return chosen if chosen is not None else f"Learner {rank}"


def answer_body(
    ranking: Ranking,
    key: RankingKey,
    today: dt.date,
    limit: int,
    requester: str,
    *,
    show_ids: bool,
    visible_name: Callable[[str], str | None],
) -> dict[str, Any]:
    """The JSON body of ``GET /api/leaderboard`` (camelCase) for one requester.

    ``visible_name(student)`` is the name the student chose while visible, else
    None; ``show_ids`` is True for admins.
    """
    since, until = period_dates(key.period, today)
    entries: list[dict[str, Any]] = []
    for rank, student_id, points in ranking.top(limit):
        is_me = student_id == requester
        entry: dict[str, Any] = {
            "rank": rank,
            "name": display_name(rank, visible_name(student_id)),
            "points": points,
            "isMe": is_me,
        }
        if show_ids or is_me:
            entry["studentId"] = student_id
        entries.append(entry)
    me = ranking.standing(requester)
    return {
        "period": key.period,
        "courseId": key.course_id,
        "from": since.isoformat() if since is not None else None,
        "to": until.isoformat(),
        "ranked": ranking.ranked,
        "entries": entries,
        "me": {"rank": me.rank, "points": me.points, "percentile": me.percentile},
    }
