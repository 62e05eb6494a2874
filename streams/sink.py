"""The ClickHouse side of the worker: batched writes, state loading, dedup look-ups.

``write`` inserts one batch's rows in a fixed order (dead letters, catalog,
the aggregates, then ``learning_events`` last) so that a crash between two
inserts is repaired by the replay (see ``streams.processor``); the aggregate
tables, which do not depend on each other, are inserted at the same time when
the sink has more than one writer client. State snapshots are written on their
own, between batches. It raises on
failure; the caller retries the same rows (inserts are idempotent replacements)
and acknowledges the batch's offsets only after ``write`` returned.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from schemas.events import LearningEvent, ParsedEvent
from streams import rows
from streams.known_students import KnownStudents
from streams.student_state import StudentState

log = logging.getLogger(__name__)

WRITE_ORDER = (
    "dead_letters",
    "course_catalog",
    "student_courses",
    "student_course_daily",
    "student_summary",
    "student_dashboard",
    "learning_events",
    "student_state",
)
# Inserted at the same time (each on its own writer client) after the tables
# before them in WRITE_ORDER and before those after them.
PARALLEL_TABLES = frozenset(
    {"student_courses", "student_course_daily", "student_summary", "student_dashboard"}
)
LOOKUP_CHUNK = 1000
KNOWN_CHUNK = 200_000  # student ids read per query when the known-students filter is built
INSERT_SETTINGS = {"date_time_input_format": "best_effort"}
INLINE_SETTINGS = ", ".join(f"{name} = '{value}'" for name, value in INSERT_SETTINGS.items())
REPLAY_COLUMNS = (
    "event_id, student_id, type, course_id, module_id, lesson_id, quiz_id, "
    "toUnixTimestamp64Milli(occurred_at), local_date, timezone, completed, "
    "time_spent_minutes, progress, score, batch_version"
)


class ClickHouseSink:
    """Writes rows and serves the processor's ``StateStore`` look-ups."""

    def __init__(
        self,
        client: Client,
        writer: Client | Sequence[Client] | None = None,
        *,
        inline_inserts: bool = False,
    ) -> None:
        """``client`` answers the look-ups; ``writer`` (default: the same) takes the inserts.

        The embedded engine's client runs one call at a time: with one client, a
        look-up for batch N+1 on the event loop would wait for batch N's insert.
        Several writer clients insert the aggregate tables of a batch at the same
        time: each insert parses its rows on one engine thread, and the worker
        waited for them one after the other (with three writers a batch of 5,000
        events for 5,000 students was written in 137 ms instead of 186, while
        another thread kept the GIL busy as the event loop does).
        With ``inline_inserts`` (the embedded engine) the rows travel inside the
        ``INSERT`` statement instead of through a temporary file (see ``_insert``).
        """
        self.client = client
        if writer is None:
            writers = [client]
        elif isinstance(writer, (list, tuple)):
            writers = list(writer)
        else:
            writers = [writer]
        self.writer = writers[0]
        self._idle_writers: queue.SimpleQueue[Client] = queue.SimpleQueue()
        for each in writers:
            self._idle_writers.put(each)
        self._pool = ThreadPoolExecutor(len(writers), "ch-writer") if len(writers) > 1 else None
        self.inline_inserts = inline_inserts

    def write(self, tables: dict[str, list[rows.Row]]) -> int:
        """Insert every table's rows in the safe order; return the row count."""
        unknown = set(tables) - set(WRITE_ORDER)
        if unknown:
            raise ValueError(f"no write order for tables {sorted(unknown)}")
        present = [table for table in WRITE_ORDER if tables.get(table)]
        together = [table for table in present if table in PARALLEL_TABLES]
        if self._pool is None or len(together) < 2:
            for table in present:
                self._insert_rows(table, tables[table])
        else:
            for table in present[: present.index(together[0])]:
                self._insert_rows(table, tables[table])
            futures = [self._pool.submit(self._insert_rows, t, tables[t]) for t in together]
            for future in futures:  # every one finished (or failed) before going on
                future.exception()
            for future in futures:
                future.result()  # raises the first failure
            for table in present[present.index(together[-1]) + 1 :]:
                self._insert_rows(table, tables[table])
        return sum(len(tables[table]) for table in present)

    def _insert_rows(self, table: str, table_rows: list[rows.Row]) -> None:
        # orjson writes the rows as JSON in C; ClickHouse parses them in C++:
        # several times cheaper than the driver's per-value native encoding.
        self._insert(table, b"\n".join(map(orjson.dumps, table_rows)))

    def _insert(self, table: str, block: bytes) -> None:
        """Insert JSONCompactEachRow rows into ``table``.

        clickhouse-connect's chdb backend writes an insert block to a temporary
        file and inserts ``FROM INFILE``: every file step gives the GIL up and
        waits up to a switch interval (5 ms) to get it back from the event loop,
        which processes the next batch meanwhile. Measured per batch of 1,200
        events with a busy event loop: 120-156 ms that way, 92 ms with the rows
        inline in the statement (``raw_query``), 53-60 ms with an idle loop.
        """
        columns = ", ".join(rows.COLUMNS[table])
        writer = self._idle_writers.get()  # one call at a time per client
        try:
            self._insert_with(writer, table, columns, block)
        finally:
            self._idle_writers.put(writer)

    def _insert_with(self, writer: Client, table: str, columns: str, block: bytes) -> None:
        if self.inline_inserts:
            writer.raw_query(
                f"INSERT INTO {table} ({columns}) SETTINGS {INLINE_SETTINGS} "
                f"FORMAT JSONCompactEachRow\n{block.decode()}"
            )
            return
        writer.raw_insert(
            table,
            column_names=rows.COLUMNS[table],
            insert_block=block,
            settings=INSERT_SETTINGS,
            fmt="JSONCompactEachRow",
        )

    def load_states(self, student_ids: list[str]) -> dict[str, StudentState]:
        """The saved states of these students (students never seen are absent)."""
        states: dict[str, StudentState] = {}
        for start in range(0, len(student_ids), LOOKUP_CHUNK):
            chunk = student_ids[start : start + LOOKUP_CHUNK]
            result = self.client.query(
                "SELECT student_id, state FROM student_state FINAL "
                "WHERE student_id IN {ids:Array(String)}",
                parameters={"ids": chunk},
            )
            for student_id, blob in result.result_rows:
                states[student_id] = StudentState.from_dict(student_id, orjson.loads(blob))
        return states

    def known_students(self) -> KnownStudents:
        """Every student with a ``student_summary`` or ``student_state`` row.

        A flush writes a student's summary before its ``learning_events`` rows and a
        snapshot only after them, so this covers every student with a snapshot or
        counted events. Read in slices of about ``KNOWN_CHUNK`` ids.
        """
        stored = (
            "SELECT student_id FROM student_summary UNION ALL SELECT student_id FROM student_state"
        )
        rows_stored = int(self.client.command(f"SELECT count() FROM ({stored})") or 0)
        known = KnownStudents(2 * rows_stored)
        slices = max(1, -(-rows_stored // KNOWN_CHUNK))
        for part in range(slices):
            result = self.client.query(
                f"SELECT DISTINCT student_id FROM ({stored}) "
                "WHERE cityHash64(student_id) % {slices:UInt64} = {part:UInt64}",
                parameters={"slices": slices, "part": part},
            )
            known.update(row[0] for row in result.result_rows)
        return known

    def counted_since(self, versions: dict[str, int]) -> list[ParsedEvent]:
        """Counted events of these students written after ``versions[student]``."""
        replay: list[ParsedEvent] = []
        ids = list(versions)
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            result = self.client.query(
                f"SELECT {REPLAY_COLUMNS} FROM learning_events "
                "WHERE student_id IN {ids:Array(String)} AND batch_version > {since:UInt64}",
                parameters={"ids": chunk, "since": min(versions[sid] for sid in chunk)},
            )
            for row in result.result_rows:
                if row[-1] > versions[row[1]]:
                    replay.append(replayed_event(row))
        return replay

    def counted(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (student, event) pairs of ``keys`` that ``learning_events`` holds."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start : start + LOOKUP_CHUNK]
            result = self.client.query(
                "SELECT DISTINCT student_id, event_id FROM learning_events "
                "WHERE student_id IN {sids:Array(String)} "
                "AND (student_id, event_id) IN {keys:Array(Tuple(String, String))}",
                parameters={"sids": sorted({k[0] for k in chunk}), "keys": chunk},
            )
            found.update((student_id, event_id) for student_id, event_id in result.result_rows)
        return found

    def max_version(self) -> int:
        """The newest version written so far (versions never go back, even if the clock does)."""
        return int(
            self.client.command(
                "SELECT max(v) FROM (SELECT max(batch_version) AS v FROM learning_events "
                "UNION ALL SELECT max(version) FROM student_state "
                "UNION ALL SELECT max(version) FROM course_catalog)"
            )
            or 0
        )

    def release_engine_memory(self) -> None:
        """Make the engine's allocator hand its freed pages back (embedded engine only:
        a server's memory is not ours to manage)."""
        self.writer.command("SYSTEM JEMALLOC PURGE")

    def ping(self) -> None:
        """Raise if ClickHouse does not answer."""
        self.client.command("SELECT 1")


def replayed_event(row: tuple[Any, ...]) -> ParsedEvent:
    """A counted event read back from ``learning_events`` (validated when it was counted)."""
    (event_id, student_id, kind, course_id, module_id, lesson_id, quiz_id, occurred_ms,
     local_date, zone_label, completed, time_spent, progress, score, _version) = row  # fmt: skip
    event = LearningEvent.model_construct(
        event_id=event_id, type=kind, student_id=student_id, course_id=course_id,
        module_id=module_id, lesson_id=lesson_id, quiz_id=quiz_id, completed=bool(completed),
        time_spent=time_spent, progress=progress, score=score, timezone=None,
    )  # fmt: skip
    return ParsedEvent(event, int(occurred_ms), local_date, zone_label)
