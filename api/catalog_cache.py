"""The course catalog as the API sees it: read at most once a second per client.

Every dashboard needs the title and lesson count of the student's courses; the
catalog is small and changes rarely, so it is read whole (``course_catalog
FINAL``) and kept for ``ttl`` seconds instead of being read with every request.
A course the kept copy does not know is looked up again at once (a course
published a moment ago), so only changes to known courses (a new title, a
tombstone) can take up to ``ttl`` to show.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from api.records import CatalogEntry

CATALOG_SQL = "SELECT course_id, title, total_lessons, deleted FROM course_catalog FINAL"
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

    def _read(self, client: Any) -> dict[str, CatalogEntry]:
        read_at = self.clock()
        rows = client.query(CATALOG_SQL).result_rows
        catalog = {
            course_id: CatalogEntry(course_id, title, int(total), deleted=bool(deleted))
            for course_id, title, total, deleted in rows
        }
        with self._lock:
            self._kept[client] = (read_at, catalog)
        return catalog
