"""The course catalog as the API sees it: read at most once a second per client.

Every dashboard needs the title and lesson count of the student's courses; the
catalog is small and changes rarely, so it is read whole (``course_catalog
FINAL``) and kept for ``ttl`` seconds instead of being read with every request.
A course the kept copy does not know is looked up again at once (a course
published a moment ago), so only changes to known courses (a new title, a
tombstone) can take up to ``ttl`` to show; answers from kept dashboard payloads
(``kept_entries``, no I/O) take a course they do not find as absent, and the
dashboard feed reads the catalog before ``ttl`` passes.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from api.records import CatalogEntry

CATALOG_SQL = (
    "SELECT course_id, title, total_lessons, deleted, lessons, lessons_listed "
    "FROM course_catalog FINAL"
)
CATALOG_TTL_SECONDS = 1.0


class CatalogCache:
    """The last catalog read per ClickHouse client, refreshed after ``ttl`` seconds."""

    def __init__(
        self, ttl: float = CATALOG_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, CatalogEntry]]] = (
            weakref.WeakKeyDictionary()
        )

    def entries(self, client: Any, course_ids: Iterable[str]) -> dict[str, CatalogEntry]:
        """The catalog entries of ``course_ids`` (absent when the catalog has none)."""
        wanted = list(course_ids)
        with self._lock:
            read_at, catalog = self._kept.get(client, (float("-inf"), {}))
        stale = self.clock() - read_at >= self.ttl
        if stale or any(course_id not in catalog for course_id in wanted):
            catalog = self._read(client)
        return {cid: catalog[cid] for cid in wanted if cid in catalog}

    def kept_entries(
        self, client: Any, course_ids: Iterable[str]
    ) -> dict[str, CatalogEntry] | None:
        """``entries`` without I/O, None when the kept copy is stale. Unlike ``entries``,
        a course the fresh copy lacks is taken as absent: one published within the
        last ``ttl`` seconds shows once the dashboard feed has read the catalog again."""
        with self._lock:
            read_at, catalog = self._kept.get(client, (float("-inf"), {}))
        if self.clock() - read_at >= self.ttl:
            return None
        return {cid: catalog[cid] for cid in course_ids if cid in catalog}

    def refresh_if_due(self, client: Any, ahead: float) -> None:
        """Read the catalog again when the kept copy is stale within ``ahead`` seconds
        (the dashboard feed calls this, so answers from kept payloads find it fresh)."""
        with self._lock:
            read_at, _ = self._kept.get(client, (float("-inf"), {}))
        if self.clock() - read_at >= self.ttl - ahead:
            self._read(client)

    def _read(self, client: Any) -> dict[str, CatalogEntry]:
        read_at = self.clock()
        rows = client.query(CATALOG_SQL).result_rows
        with self._lock:
            _, before = self._kept.get(client, (float("-inf"), {}))
        catalog = {
            course_id: CatalogEntry(
                course_id, title, int(total), bool(deleted), frozenset(lessons) if listed else None
            )
            for course_id, title, total, deleted, lessons, listed in rows
        }
        # An unchanged entry stays the same object: kept answers compare their entries
        # with the copy's on every hit, and identical objects compare at once (a lesson
        # list compared item by item would cost that on every hit instead of per read).
        for course_id, entry in catalog.items():
            old = before.get(course_id)
            if old is not None and old == entry:
                catalog[course_id] = old
        with self._lock:
            self._kept[client] = (read_at, catalog)
        return catalog
