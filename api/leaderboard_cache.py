"""Rankings and visible names the API keeps in memory, and the thread that refreshes them.

A ranking (``api.ranking.Ranking``) is read by every leaderboard request of its
key (period, course, dates) and changes only when points change, so the API
keeps it and answers from it without I/O instead of summing a period's points
per request. ``Rankings``:

- builds a missing ranking once, whoever asks (single flight): the first
  request of a key waits for one ClickHouse query, the others for its result;
- rebuilds a kept one on ``RefreshThread`` once it is ``refresh_seconds`` old,
  was read since its last build and its data may have changed: it subscribes to
  the change feed (``api.change_feed``) and skips the rebuild when no student's
  rows changed since its build began; without a live feed it rebuilds by age
  alone. So a ranking being read shows a change in ClickHouse within about
  ``refresh_seconds`` + a rebuild, and one nobody reads costs nothing;
- answers from a ranking only while it is current enough: when it was last
  known current more than ``stale_after`` ago (5 s by default) and the data may
  have changed since (the feed saw a change, or is not live: ClickHouse down, or
  no feed), the read rebuilds it instead (a ranking read again after a pause,
  rounds running late; with ClickHouse down the read answers 503); and never
  when it was last known current more than ``max_age`` ago (30 s);
- drops a ranking nobody read for ``idle_seconds`` and, beyond
  ``max_learners`` ranked learners in all, the least recently read ones.

The keys: ``all`` has one ranking per course scope; ``week`` and ``month`` one
per requester's today as well. At any instant the world's local dates span at
most three days (UTC-12 to UTC+14), so at most (2 x 3 + 1) x (courses + 1)
rankings can be asked for; ``max_learners`` bounds their memory.

``ProfileBook`` keeps every stored visibility choice (a version and the name
while visible) and reads the ones written since it last looked, with an
overlap for writers whose clocks lag; a choice made through this process is
applied at once. Thread-safe; no I/O but through the callables given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from api.leaderboard_store import ProfileRow
from api.ranking import Ranking, RankingKey

log = logging.getLogger(__name__)

IDLE_SECONDS = 120.0  # a ranking nobody read for this long is dropped
BUILD_SHARE = 0.25  # rebuilds take at most this share of the refresher's time
FEED_LIVE_SECONDS = 1.0  # the change feed counts as live when it polled this recently
PROFILE_OVERLAP_NS = 30 * 1_000_000_000  # choices are read again this far back


@dataclass(slots=True)
class _Kept:
    ranking: Ranking
    current_at: float  # when it was last known current (its build's start, or a check)
    generation: int  # the change generation when its build began
    read_at: float
    read_since_build: bool = False


class Rankings:
    """Kept rankings by key (see the module); a ``FeedSubscriber`` of the change feed."""

    def __init__(
        self,
        build: Callable[[RankingKey], Ranking],
        *,
        refresh_seconds: float = 2.0,
        max_learners: int = 1_000_000,
        max_age: float | None = None,
        stale_after: float | None = None,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.refresh_seconds = refresh_seconds
        self.max_learners = max_learners
        self.max_age = max_age if max_age is not None else max(30.0, 10 * refresh_seconds)
        self.stale_after = stale_after if stale_after is not None else max(5, 2.5 * refresh_seconds)
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: OrderedDict[RankingKey, _Kept] = OrderedDict()
        self._building: dict[RankingKey, Future[Ranking]] = {}
        self._learners = 0
        self._generation = 0  # bumped by every feed poll that saw a change
        self._feed_polled_at: float | None = None

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def learners(self) -> int:
        """Ranked learners held in all the kept rankings."""
        return self._learners

    # ----------------------------------------------------------------- reads
    def kept(self, key: RankingKey) -> Ranking | None:
        """The kept ranking of ``key`` if it is current enough (see the module), else None."""
        now = self.clock()
        with self._lock:
            entry = self._kept.get(key)
            if entry is None:
                return None
            age = now - entry.current_at
            if age > self.max_age or (age > self.stale_after and self._maybe_changed(entry, now)):
                return None
            entry.read_at = now
            entry.read_since_build = True
            self._kept.move_to_end(key)
            return entry.ranking

    def _feed_live(self, now: float) -> bool:
        polled = self._feed_polled_at
        return polled is not None and now - polled <= FEED_LIVE_SECONDS

    def _maybe_changed(self, entry: _Kept, now: float) -> bool:
        """True unless the live feed saw no change since ``entry``'s build began."""
        return entry.generation != self._generation or not self._feed_live(now)

    def get(self, key: RankingKey) -> Ranking:
        """``kept(key)``, else the ranking built now (blocking: call off the event loop)."""
        ranking = self.kept(key)
        return ranking if ranking is not None else self.build(key, read=True)

    def build(self, key: RankingKey, *, read: bool = False) -> Ranking:
        """Build the ranking of ``key`` and keep it; callers of the same key at the same
        time share one build (and its exception). ``read``: a request reads it (a
        rebuild by the refresher is not a read: an unread ranking still goes idle)."""
        with self._lock:
            pending = self._building.get(key)
            if pending is None:
                future: Future[Ranking] = Future()
                self._building[key] = future
        if pending is not None:
            return pending.result()
        try:
            generation, started = self._generation, self.clock()
            ranking = self._build(key)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._building[key]
        self._keep(key, _Kept(ranking, started, generation, self.clock()), read)
        future.set_result(ranking)
        return ranking

    def _keep(self, key: RankingKey, entry: _Kept, read: bool) -> None:
        with self._lock:
            old = self._kept.get(key)
            if old is not None:
                self._learners -= old.ranking.ranked
                if not read:  # a rebuild keeps its place in the reading order
                    entry.read_at = old.read_at
            self._kept[key] = entry
            if read:
                self._kept.move_to_end(key)
            self._learners += entry.ranking.ranked
            while self._learners > self.max_learners and len(self._kept) > 1:
                _, dropped = self._kept.popitem(last=False)
                self._learners -= dropped.ranking.ranked

    # --------------------------------------------------------------- refresh
    def refresh(self) -> int:
        """One round of the refresher: drop idle rankings, confirm the unchanged ones and
        rebuild the changed ones read since their build. Returns how many were rebuilt;
        raises when a rebuild fails."""
        now = self.clock()
        feed_live = self._feed_live(now)
        due: list[RankingKey] = []
        with self._lock:
            for key, entry in list(self._kept.items()):
                if now - entry.read_at > self.idle_seconds:
                    del self._kept[key]
                    self._learners -= entry.ranking.ranked
                elif now - entry.current_at >= self.refresh_seconds:
                    if feed_live and entry.generation == self._generation:
                        entry.current_at = self._feed_polled_at or now  # nothing changed since
                    elif entry.read_since_build:
                        due.append(key)
        for key in due:
            self.build(key)
        return len(due)

    def changed(self, versions: Sequence[tuple[str, int]], polled_at: float) -> None:
        """Change feed: a poll that began at ``polled_at`` saw these students' rows change."""
        with self._lock:
            if versions:
                self._generation += 1
            self._feed_polled_at = polled_at

    def restarted(self) -> None:
        """Change feed: the table was recreated; every kept ranking is suspect."""
        with self._lock:
            self._generation += 1

    def clear(self) -> None:
        """Forget every kept ranking."""
        with self._lock:
            self._kept.clear()
            self._learners = 0


class ProfileBook:
    """The stored visibility choices, by student: (version, name while visible, else None)."""

    def __init__(self, read: Callable[[int], list[ProfileRow]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, str | None]] = {}
        self._high = 0  # highest version read from ClickHouse
        self._loaded = False
        self._issued = 0  # highest version this process wrote

    @property
    def loaded(self) -> bool:
        return self._loaded

    def visible_name(self, student_id: str) -> str | None:
        """The name ``student_id`` chose to show, or None while not visible."""
        found = self._latest.get(student_id)
        return None if found is None else found[1]

    def apply(self, row: ProfileRow) -> None:
        """Take one stored choice; an older version than the one kept changes nothing."""
        with self._lock:
            self._apply(row)

    def _apply(self, row: ProfileRow) -> None:
        kept = self._latest.get(row.student_id)
        if kept is None or row.version >= kept[0]:
            self._latest[row.student_id] = (row.version, row.name if row.visible else None)

    def refresh(self) -> int:
        """Read the choices stored since the last read (all of them the first time)."""
        after = max(0, self._high - PROFILE_OVERLAP_NS) if self._loaded else 0
        rows = self._read(after)
        with self._lock:
            for row in rows:
                self._apply(row)
                self._high = max(self._high, row.version)
            self._loaded = True
        return len(rows)

    def next_version(self, now_ns: int) -> int:
        """A version for a write through this process: ``now_ns``, always above the last."""
        with self._lock:
            self._issued = max(now_ns, self._issued + 1)
            return self._issued


class ZoneCache:
    """The zone label of learners' latest events ("today" without ``tz``), kept while the
    change feed says nothing of theirs changed; a ``FeedSubscriber``.

    A label is answered only while the feed polled within ``FEED_LIVE_SECONDS`` and for at
    most ``ttl`` seconds (which also heals a read that raced with a change); at most
    ``capacity`` labels are kept, the least recently used going first.
    """

    def __init__(
        self,
        capacity: int = 100_000,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._labels: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._polled_at: float | None = None

    def get(self, student_id: str) -> str | None:
        """The kept label, or None (not kept, too old, or the feed is not live)."""
        now = self.clock()
        if self._polled_at is None or now - self._polled_at > FEED_LIVE_SECONDS:
            return None
        with self._lock:
            found = self._labels.get(student_id)
            if found is None or now - found[0] > self.ttl:
                return None
            self._labels.move_to_end(student_id)
            return found[1]

    def put(self, student_id: str, label: str, read_started: float) -> None:
        """Keep a label read by a read that started at ``read_started``."""
        with self._lock:
            self._labels[student_id] = (read_started, label)
            self._labels.move_to_end(student_id)
            while len(self._labels) > self.capacity:
                self._labels.popitem(last=False)

    def changed(self, versions: Sequence[tuple[str, int]], polled_at: float) -> None:
        with self._lock:
            for student_id, _version in versions:
                self._labels.pop(student_id, None)
            self._polled_at = polled_at

    def restarted(self) -> None:
        with self._lock:
            self._labels.clear()


class RefreshThread:
    """Runs ``profiles.refresh`` and ``rankings.refresh`` every ``interval`` seconds, or
    less often when rounds take long: a round that took t seconds is followed by a
    pause of at least t x 3 (``BUILD_SHARE``), so rebuilds use at most a quarter of a
    core however many rankings are kept and however fast points change; what gives
    is freshness (``refresh_seconds`` is then exceeded)."""

    def __init__(self, rankings: Rankings, profiles: ProfileBook, interval: float) -> None:
        self.rankings = rankings
        self.profiles = profiles
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leaderboards", daemon=True)

    def start(self) -> RefreshThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        failing = False
        pause = self.interval
        while not self._stop.wait(pause):
            started = time.monotonic()
            try:
                if self.profiles.loaded:
                    self.profiles.refresh()
                self.rankings.refresh()
            except Exception as exc:  # ClickHouse down: rankings age out, reads rebuild
                if not failing:
                    log.warning("leaderboard refresh failed: %s", exc)
                failing = True
            else:
                if failing:
                    log.info("leaderboard refresh recovered")
                failing = False
            spent = time.monotonic() - started
            pause = max(self.interval, spent * (1 - BUILD_SHARE) / BUILD_SHARE)
