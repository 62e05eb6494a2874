"""The lesson lists of the catalog as the worker sees them, to refuse unknown lessons.

When a course's catalog entry lists its lessons, a ``lesson_progress`` event
naming another lesson of that course is a dead letter with reason
``unknown_lesson`` (docs/api.md § What a student can and cannot claim).
``LessonCatalog`` holds the lists (courses without one are absent: any lesson
counts) and answers ``unknown`` in one dict look-up per event.

Where the lists come from: the ``course-catalog`` topic is split among the
workers like any topic, so a worker sees only some catalog messages. The
lists are therefore read from ``course_catalog`` (written by whichever worker
consumed the message): ``CatalogPoller`` asks ClickHouse every ``interval``
seconds whether the table changed (row count, highest and summed versions: one
cheap query) and reads the lists again only when it did. A catalog message this
worker wrote itself is applied at once (``apply``). So a list is in force here
within about ``interval`` seconds of being in ClickHouse; an event processed
before that is judged by the list it found (the catalog in force when the
worker processes an event decides). Events replayed from ``learning_events``
after a restart were counted already and are never judged again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

# The table changed (a new row, a merge) when one of these changed.
SIGNATURE_SQL = "SELECT count(), max(version), sum(version) FROM course_catalog"
LISTS_SQL = (
    "SELECT course_id, lessons FROM course_catalog FINAL WHERE lessons_listed = 1 AND deleted = 0"
)
POLL_SECONDS = 1.0


class LessonCatalog:
    """Course id -> its listed lessons (courses with a list only)."""

    def __init__(self, lists: dict[str, frozenset[str]] | None = None) -> None:
        self.lists: dict[str, frozenset[str]] = dict(lists or {})

    def unknown(self, course_id: str, lesson_id: str | None) -> bool:
        """True when the course lists its lessons and ``lesson_id`` is not one of them."""
        listed = self.lists.get(course_id)
        return listed is not None and lesson_id not in listed

    def replace(self, lists: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Take every list anew (courses absent from ``lists`` have none)."""
        self.lists = {course_id: frozenset(lessons) for course_id, lessons in lists}

    def apply(self, course_id: str, lessons: Iterable[str] | None) -> None:
        """One entry changed: its list, or None (no list, deleted)."""
        if lessons is None:
            self.lists.pop(course_id, None)
        else:
            self.lists[course_id] = frozenset(lessons)


class CatalogPoller:
    """Keeps a ``LessonCatalog`` in step with ``course_catalog`` (see the module)."""

    def __init__(
        self,
        client: Any,
        catalog: LessonCatalog,
        interval: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.interval = interval
        self.clock = clock
        self._polled_at = float("-inf")
        self._signature: tuple[Any, ...] | None = None

    def refresh_if_due(self) -> bool:
        """Read the lists again when ``interval`` passed and the table changed; True if read.

        Raises what the client raises (the caller retries the batch).
        """
        now = self.clock()
        if now - self._polled_at < self.interval:
            return False
        signature = tuple(self.client.query(SIGNATURE_SQL).result_rows[0])
        self._polled_at = now
        if signature == self._signature:
            return False
        rows = self.client.query(LISTS_SQL).result_rows
        self.catalog.replace((course_id, lessons) for course_id, lessons in rows)
        self._signature = signature
        return True
