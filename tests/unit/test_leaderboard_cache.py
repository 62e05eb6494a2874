"""Kept rankings and names (``api.leaderboard_cache``): builds, refreshes, bounds.

Pure logic with a fake clock and a build function that counts its calls.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from api.leaderboard_cache import PROFILE_OVERLAP_NS, ProfileBook, Rankings
from api.leaderboard_store import ProfileRow
from api.ranking import Ranking, RankingKey, ranking_key

D = dt.date(2026, 11, 26)
WEEK = ranking_key("week", None, D)
ALL = ranking_key("all", None, D)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Builds:
    """A build function: rankings of ``size`` learners, counting calls per key."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.calls: list[RankingKey] = []
        self.fail = False

    def __call__(self, key: RankingKey) -> Ranking:
        self.calls.append(key)
        if self.fail:
            raise RuntimeError("ClickHouse down")
        return Ranking.from_totals((f"s{i}", i + 1) for i in range(self.size))


def make(builds: Builds, clock: Clock, **kw: float) -> Rankings:
    return Rankings(builds, refresh_seconds=2.0, clock=clock, **kw)  # type: ignore[arg-type]


def test_a_ranking_is_built_once_and_then_kept() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock)
    assert rankings.kept(WEEK) is None
    first = rankings.get(WEEK)
    clock.now += 4
    assert rankings.get(WEEK) is first
    assert builds.calls == [WEEK]
    clock.now += 2  # 6 s old, and no live feed to say nothing changed: the read rebuilds
    assert rankings.get(WEEK) is not first
    assert builds.calls == [WEEK, WEEK]


def test_a_ranking_never_confirmed_is_not_answered_after_max_age() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock)
    rankings.changed([], clock.now)
    first = rankings.get(WEEK)
    clock.now += 29
    rankings.changed([], clock.now)  # live, nothing changed, but no refresher confirmed it
    assert rankings.get(WEEK) is first
    clock.now += 2
    rankings.changed([], clock.now)
    assert rankings.kept(WEEK) is None


def test_callers_of_one_key_share_one_build() -> None:
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow(key: RankingKey) -> Ranking:
        calls.append(key)
        started.set()
        release.wait(5)
        return Ranking.from_totals([("a", 1)])

    rankings = Rankings(slow)
    results: list[Ranking] = []
    threads = [threading.Thread(target=lambda: results.append(rankings.get(WEEK)))]
    threads[0].start()
    assert started.wait(5)
    threads += [threading.Thread(target=lambda: results.append(rankings.get(WEEK)))]
    threads[1].start()
    time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and len(results) == 2 and results[0] is results[1]


def test_a_failed_build_keeps_nothing_and_raises() -> None:
    builds, clock = Builds(), Clock()
    builds.fail = True
    rankings = make(builds, clock)
    with pytest.raises(RuntimeError):
        rankings.get(WEEK)
    assert rankings.kept(WEEK) is None and len(rankings) == 0
    builds.fail = False
    assert rankings.get(WEEK).ranked == 3


def test_refresh_skips_what_the_feed_says_did_not_change() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock)
    rankings.changed([], clock.now)  # the feed is live
    rankings.get(WEEK)
    clock.now += 3
    rankings.changed([], clock.now)  # polled: nothing changed
    assert rankings.refresh() == 0
    clock.now += 29  # 32 s after the build, confirmed 29 s ago: still answered
    rankings.changed([], clock.now)
    assert rankings.refresh() == 0
    assert rankings.kept(WEEK) is not None
    rankings.changed([("s1", 7)], clock.now)  # a student's rows changed
    clock.now += 2.5
    rankings.changed([], clock.now)
    assert rankings.refresh() == 1
    assert builds.calls == [WEEK, WEEK]


def test_refresh_rebuilds_by_age_without_a_live_feed() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock)
    rankings.get(WEEK)
    clock.now += 1
    rankings.get(WEEK)
    assert rankings.refresh() == 0  # not due yet
    clock.now += 1.5
    assert rankings.refresh() == 1
    rankings.changed([], clock.now)
    clock.now += 3  # the feed went quiet for 3 s: no longer trusted
    assert rankings.refresh() == 0  # but nobody read it since its rebuild
    rankings.get(WEEK)
    assert rankings.refresh() == 1
    assert builds.calls == [WEEK, WEEK, WEEK]


def test_a_changed_ranking_read_after_a_pause_is_rebuilt_by_the_read() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock)
    rankings.changed([], clock.now)
    rankings.get(WEEK)
    for _ in range(5):  # nobody reads it; points change: the refresher leaves it
        clock.now += 2
        rankings.changed([("s1", 1)], clock.now)
        assert rankings.refresh() == 0
    assert rankings.kept(WEEK) is None  # 10 s behind a change: not answered as it is
    rankings.get(WEEK)
    assert builds.calls == [WEEK, WEEK]
    clock.now += 4
    rankings.changed([("s2", 1)], clock.now)
    assert rankings.kept(WEEK) is not None  # 4 s behind: still answered


def test_a_ranking_nobody_reads_is_dropped() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock, idle_seconds=60)
    rankings.get(WEEK)
    rankings.get(ALL)
    for _ in range(40):  # WEEK keeps being read; ALL is not
        clock.now += 2
        rankings.get(WEEK)
        rankings.refresh()
    assert rankings.kept(ALL) is None and rankings.kept(WEEK) is not None
    assert len(rankings) == 1 and rankings.learners == 3


def test_learners_beyond_the_bound_drop_the_least_recently_read() -> None:
    builds, clock = Builds(size=400), Clock()
    rankings = make(builds, clock, max_learners=1000)
    keys = [ranking_key("week", f"c{i}", D) for i in range(3)]
    for key in keys:
        rankings.get(key)
        clock.now += 0.1
    rankings.get(keys[0])  # read again: now the most recent
    rankings.get(ALL)  # 1,600 learners: the least recently read go first
    assert [rankings.kept(k) is not None for k in keys] == [True, False, False]
    assert rankings.learners == 800


def test_restarted_table_makes_every_kept_ranking_due() -> None:
    builds, clock = Builds(), Clock()
    rankings = make(builds, clock)
    rankings.changed([], clock.now)
    rankings.get(WEEK)
    rankings.restarted()
    clock.now += 2
    rankings.changed([], clock.now)
    rankings.get(WEEK)
    assert rankings.refresh() == 1


# ------------------------------------------------------------------ names
def row(student: str, version: int, visible: bool = True, name: str | None = "Ann") -> ProfileRow:
    return ProfileRow(student, visible, name, version)


def test_the_latest_choice_wins_whatever_the_order_read() -> None:
    book = ProfileBook(lambda after: [])
    book.apply(row("s1", 20, visible=False))
    book.apply(row("s1", 10, name="Old"))
    assert book.visible_name("s1") is None
    book.apply(row("s1", 30, name="New"))
    assert book.visible_name("s1") == "New"
    assert book.visible_name("nobody") is None


def test_refresh_reads_all_then_what_is_new_with_an_overlap() -> None:
    asked: list[int] = []
    stored = [row("s1", 5_000_000_000_000, name="A"), row("s2", 6_000_000_000_000, name="B")]

    def read(after: int) -> list[ProfileRow]:
        asked.append(after)
        return [r for r in stored if r.version > after]

    book = ProfileBook(read)
    assert not book.loaded
    assert book.refresh() == 2 and book.loaded
    stored.append(row("s1", 6_000_000_000_001, visible=False))
    book.refresh()
    assert asked == [0, 6_000_000_000_000 - PROFILE_OVERLAP_NS]
    assert book.visible_name("s1") is None and book.visible_name("s2") == "B"


def test_versions_of_one_process_always_increase() -> None:
    book = ProfileBook(lambda after: [])
    assert book.next_version(100) == 100
    assert book.next_version(100) == 101
    assert book.next_version(50) == 102
    assert book.next_version(500) == 500


def test_a_rebuild_is_not_a_read() -> None:
    builds, clock = Builds(size=400), Clock()
    rankings = make(builds, clock, max_learners=1000)
    first, second = ranking_key("week", "c1", D), ranking_key("week", "c2", D)
    rankings.get(first)
    rankings.get(second)
    rankings.get(first)
    rankings.get(second)
    clock.now += 2
    assert rankings.refresh() == 2  # both rebuilt; c1 is still the least recently read
    rankings.get(ALL)
    assert rankings.kept(first) is None and rankings.kept(second) is not None


# ------------------------------------------------------------------ zones
def test_a_zone_is_kept_while_the_feed_is_live_and_nothing_changed() -> None:
    from api.leaderboard_cache import ZoneCache

    clock = Clock()
    zones = ZoneCache(capacity=2, ttl=60, clock=clock)
    zones.put("s1", "Europe/Paris", clock.now)
    assert zones.get("s1") is None  # the feed has not polled yet
    zones.changed([], clock.now)
    assert zones.get("s1") == "Europe/Paris"
    zones.changed([("s1", 9)], clock.now)  # s1 had an event: maybe in another zone
    assert zones.get("s1") is None
    zones.put("s1", "Asia/Tokyo", clock.now)
    clock.now += 2  # the feed went quiet
    assert zones.get("s1") is None
    zones.changed([], clock.now)
    assert zones.get("s1") == "Asia/Tokyo"
    clock.now += 61
    zones.changed([], clock.now)
    assert zones.get("s1") is None  # older than the ttl
    for student in ("a", "b", "c"):
        zones.put(student, "UTC", clock.now)
    assert [zones.get(s) for s in ("a", "b", "c")] == [None, "UTC", "UTC"]
