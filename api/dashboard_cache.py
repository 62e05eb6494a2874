"""Dashboard payloads the API read recently, kept while no newer one was written.

A student's dashboard is polled far more often than it changes (it changes when
the student's events are counted). The API keeps the last ``student_dashboard``
payload it read per student, the least recently used going first beyond
``capacity`` (``EDUKNIT_DASHBOARD_CACHE_STUDENTS``), and answers from it while
it is current, without a ClickHouse read or a thread hop.

Current means: the change feed (``api.change_feed``, a poll every
``EDUKNIT_DASHBOARD_FEED_SECONDS``) has seen no row of that student with a
higher version. The cache subscribes to the feed (``changed``, ``restarted``):
a payload older than a version seen is dropped.

Races: a read that returned version v while a newer row was being committed is
not kept when the feed saw the newer version first (``put`` checks the versions
the feed saw in the last ``REMEMBER_SECONDS``); otherwise the next poll drops it.
So a change shows at most one poll (plus the poll's own time) after it is in
ClickHouse. When no poll has succeeded for ``stale_after`` seconds (1 s: ClickHouse
down, feed not started), nothing is answered from the kept payloads: the dashboards
answer 503 as without them (the catalog copy they need is kept 1 s too).

Each kept payload also holds the answers the routes computed from it
(``keep_answer``; ``api.kept_answers`` serves them again): they go when the
payload goes or is replaced, so no answer outlives the payload it came from.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from api.observability import DASHBOARD_CACHE

REMEMBER_SECONDS = 10.0  # versions seen by the feed are remembered 10-20 s for ``put``
# Answers kept per student (``keep_answer``): one per route and parameters asked for,
# e.g. /realtime and /statistics?days=30; a dashboard asks for one or two.
ANSWERS_PER_STUDENT = 4


class DashboardCache:
    """Payloads by student with their versions; thread-safe, no I/O. A subscriber of
    the change feed (``api.change_feed.FeedSubscriber``)."""

    def __init__(
        self, capacity: int, stale_after: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.stale_after = stale_after
        self.clock = clock
        self._lock = threading.Lock()
        # student -> (version, payload, answers kept from it: see ``keep_answer``)
        self._entries: OrderedDict[str, tuple[int, str | bytes, dict[Any, Any]]] = OrderedDict()
        self._seen: dict[str, int] = {}  # versions the feed saw since _seen_since
        self._seen_before: dict[str, int] = {}  # ... and in the period before it
        self._seen_since = clock()
        self._remember_since = self._seen_since  # versions seen since then are known
        self._polled_at: float | None = None  # start of the last successful poll

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self) -> bool:
        """True when the feed polled successfully within ``stale_after`` seconds."""
        polled = self._polled_at
        return polled is not None and self.clock() - polled <= self.stale_after

    def get(self, student_id: str) -> str | bytes | None:
        """The kept payload of ``student_id`` if it is current, else None."""
        current = self.current(student_id)
        return None if current is None else current[1]

    def current(self, student_id: str) -> tuple[int, str | bytes] | None:
        """(version, payload) of ``student_id`` if its kept payload is current, else None."""
        if not self.fresh():
            return None
        with self._lock:
            entry = self._entries.get(student_id)
            if entry is not None:
                self._entries.move_to_end(student_id)
        DASHBOARD_CACHE.labels("hit" if entry is not None else "miss").inc()
        return None if entry is None else (entry[0], entry[1])

    def answer(self, student_id: str, key: Any) -> Any:
        """The answer kept under ``key`` from the current payload of ``student_id``
        (``keep_answer``), or None. Not counted: ``api.kept_answers`` counts a hit
        when the answer still holds and is served."""
        if not self.fresh():
            return None
        with self._lock:
            entry = self._entries.get(student_id)
            if entry is None:
                return None
            found = entry[2].get(key)
            if found is not None:
                self._entries.move_to_end(student_id)
        return found

    def keep_answer(self, student_id: str, version: int, key: Any, answer: Any) -> None:
        """Keep ``answer`` (computed from the payload of ``version``) under ``key`` for as
        long as that payload is the current one: a newer payload, or the payload going,
        takes its answers with it. At most ``ANSWERS_PER_STUDENT`` are kept per student,
        the oldest going first."""
        with self._lock:
            entry = self._entries.get(student_id)
            if entry is None or entry[0] != version:
                return
            answers = entry[2]
            answers.pop(key, None)
            answers[key] = answer
            while len(answers) > ANSWERS_PER_STUDENT:
                del answers[next(iter(answers))]

    def put(self, student_id: str, payload: str | bytes, version: int, read_started: float) -> None:
        """Keep a payload read from ClickHouse by a read that started at ``read_started``."""
        if self.capacity <= 0 or not self.fresh():
            return
        with self._lock:
            if read_started < self._remember_since:
                return  # the feed may have forgotten a newer version seen since
            newer = max(self._seen.get(student_id, 0), self._seen_before.get(student_id, 0))
            if newer > version:
                return  # a newer row was written while this one was being read
            kept = self._entries.get(student_id)
            if kept is not None and kept[0] > version:
                return
            self._entries[student_id] = (version, payload, {})
            self._entries.move_to_end(student_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def changed(self, versions: Iterable[tuple[str, int]], polled_at: float) -> None:
        """What a poll that started at ``polled_at`` saw: drop the payloads it makes stale."""
        with self._lock:
            if polled_at - self._seen_since >= REMEMBER_SECONDS:
                self._remember_since = self._seen_since
                self._seen_before, self._seen = self._seen, {}
                self._seen_since = polled_at
            for student_id, version in versions:
                if version > self._seen.get(student_id, 0):
                    self._seen[student_id] = version
                kept = self._entries.get(student_id)
                if kept is not None and kept[0] < version:
                    del self._entries[student_id]
            self._polled_at = polled_at

    def clear(self) -> None:
        """Forget every payload."""
        with self._lock:
            self._entries.clear()

    def restarted(self) -> None:
        """The table was emptied or recreated: no kept payload can be trusted."""
        self.clear()
