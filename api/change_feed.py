"""The change feed: which students' dashboards changed, learned by polling ClickHouse.

``ChangeFeed.poll`` (every ``EDUKNIT_DASHBOARD_FEED_SECONDS``, on ``FeedThread``)
reads (student, highest version) from the parts of ``student_dashboard`` whose
highest block number is above the highest it has read (one query, ~1.7 ms when
nothing changed). A non-replicated MergeTree numbers blocks in commit order and
a merged part keeps the block range of its sources, so every committed row is
in a part the feed reads once it is visible: a change is seen at most one poll
(plus the poll's own time) after it is in ClickHouse.

Subscribers (``FeedSubscriber``) hear of every successful poll in the order they
subscribed, on the feed's thread: ``changed`` with the (student, version) pairs
it saw (empty when nothing changed, so that a subscriber knows the feed is
alive), and ``restarted`` when the table was emptied or recreated (its block
numbers started again). The dashboard cache drops what went stale; the live
stream pushes the new dashboards. A subscriber must return quickly and not
raise: a raising subscriber is logged and the others still hear of the poll.
When ClickHouse fails, ``poll`` raises and no subscriber hears anything, so
their view goes stale rather than wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

RESTART_CHECK_SECONDS = 5.0  # how often an idle feed checks the table was not recreated

# The highest block number of a part is the third field of its name (all_1_5_2:
# blocks 1..5, merged twice; the table has no partition key). Filtering on it in
# the query itself reads one consistent set of parts: listing the parts first and
# reading them by name after could miss parts merged in between.
_PART_MAX_BLOCK = "toInt64(splitByChar('_', _part)[3])"
_CHANGED_SQL = (
    f"SELECT student_id, max(version), max({_PART_MAX_BLOCK}) FROM student_dashboard "
    f"WHERE {_PART_MAX_BLOCK} > {{after:Int64}} GROUP BY student_id"
)
_MAX_BLOCK_SQL = (
    "SELECT max(max_block_number) FROM system.parts "
    "WHERE database = currentDatabase() AND table = 'student_dashboard' AND active"
)


class FeedSubscriber(Protocol):
    """What hears of the feed's polls (see the module)."""

    def changed(self, versions: Sequence[tuple[str, int]], polled_at: float) -> None:
        """The (student, version) pairs a poll that started at ``polled_at`` saw."""
        ...

    def restarted(self) -> None:
        """The table was emptied or recreated: every version seen before is void."""
        ...


class ChangeFeed:
    """Reads which students' dashboard rows changed since the last poll (see the module)."""

    def __init__(
        self,
        client: Any,
        subscribers: Iterable[FeedSubscriber] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.clock = clock
        self.subscribers: list[FeedSubscriber] = list(subscribers)
        self.last_block: int | None = None  # highest block number read
        self._checked_at = 0.0  # last check that block numbers did not restart

    def subscribe(self, subscriber: FeedSubscriber) -> None:
        """``subscriber`` hears of every poll from the next one on."""
        self.subscribers.append(subscriber)

    def poll(self) -> int:
        """One poll; returns how many students' rows changed. Raises when ClickHouse fails."""
        started = self.clock()
        if self.last_block is None:  # start: nothing is kept yet, only the position
            self.last_block = self._highest_block()
            self._checked_at = started
            self._tell_changed([], started)
            return 0
        rows = self.client.query(_CHANGED_SQL, parameters={"after": self.last_block}).result_rows
        if rows:
            self.last_block = max(self.last_block, max(int(block) for _, _, block in rows))
            self._tell_changed([(student, int(version)) for student, version, _ in rows], started)
            return len(rows)
        if started - self._checked_at >= RESTART_CHECK_SECONDS:
            self._checked_at = started
            highest = self._highest_block()
            if highest < self.last_block:  # emptied and recreated: block numbers restarted
                log.info("student_dashboard restarted its block numbers: versions seen dropped")
                self.last_block = highest
                for subscriber in self.subscribers:
                    self._call(subscriber.restarted)
        self._tell_changed([], started)
        return 0

    def _tell_changed(self, versions: list[tuple[str, int]], polled_at: float) -> None:
        for subscriber in self.subscribers:
            self._call(subscriber.changed, versions, polled_at)

    @staticmethod
    def _call(method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:  # one subscriber's bug must not cost the others their news
            log.exception("change feed subscriber %r failed", method)

    def _highest_block(self) -> int:
        rows = self.client.query(_MAX_BLOCK_SQL).result_rows
        return int(rows[0][0] or 0) if rows else 0


class FeedThread:
    """Runs ``feed.poll`` (then ``also``) every ``interval`` seconds on a daemon thread."""

    def __init__(
        self, feed: ChangeFeed, interval: float, also: Callable[[], None] | None = None
    ) -> None:
        self.feed = feed
        self.interval = interval
        self.also = also
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)

    def start(self) -> FeedThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.feed.poll()
                if self.also is not None:
                    self.also()
            except Exception as exc:  # ClickHouse down: subscribers go stale, reads go through
                if not failing:
                    log.warning("dashboard change feed failed (answers bypass the cache): %s", exc)
                failing = True
            else:
                if failing:
                    log.info("dashboard change feed recovered")
                failing = False
            self._stop.wait(self.interval)
