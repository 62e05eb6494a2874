"""The ClickHouse side of the worker: batched writes, state loading, dedup look-ups.

``write`` (or ``prepare`` then ``send``) inserts one batch's rows table by
table in a fixed order (dead letters, catalog, aggregates, then
``learning_events`` last) so that a crash between two inserts is repaired by
the replay (see ``streams.processor``); a state snapshot is written after the
batch it was taken with. It raises on failure; the caller retries the same rows
(inserts are idempotent replacements) and acknowledges the batch's offsets only
after the write returned.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from schemas.events import LearningEvent, ParsedEvent
from streams import rows
from streams.known_students import KnownStudents
from streams.prepared_write import PreparedWrite, prepare
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
LOOKUP_CHUNK = 1000
KNOWN_CHUNK = 200_000  # student ids read per query when the known-students filter is built
REPLAY_COLUMNS = (
    "event_id, student_id, type, course_id, module_id, lesson_id, quiz_id, "
    "toUnixTimestamp64Milli(occurred_at), local_date, timezone, completed, "
    "time_spent_minutes, progress, score, batch_version"
)


class ClickHouseSink:
    """Writes rows and serves the processor's ``StateStore`` look-ups."""

    def __init__(
        self, client: Client, writer: Client | None = None, *, embedded_engine: bool = False
    ) -> None:
        """``client`` answers the look-ups; ``writer`` (default: the same) takes the inserts.

        The embedded engine's client runs one call at a time: with one client, a
        look-up for batch N+1 on the event loop would wait for batch N's insert.
        With ``embedded_engine`` (chdb in this process) the rows travel as Arrow
        streams in memory, or inline in the statement, instead of through
        clickhouse-connect's temporary file (see ``streams.prepared_write``).
        """
        self.client = client
        self.writer = writer or client
        self.embedded_engine = embedded_engine

    def write(self, tables: dict[str, list[rows.Row]]) -> int:
        """Insert every table's rows in the safe order; return the row count."""
        prepared = self.prepare(tables)
        try:
            self.send(prepared)
        finally:
            prepared.close()
        return prepared.rows

    def prepare(self, tables: dict[str, list[rows.Row]]) -> PreparedWrite:
        """Encode the rows for ``send`` (on the caller's thread; ``close`` the result)."""
        unknown = set(tables) - set(WRITE_ORDER)
        if unknown:
            raise ValueError(f"no write order for tables {sorted(unknown)}")
        return prepare(tables, WRITE_ORDER, embedded=self.embedded_engine)

    def send(self, prepared: PreparedWrite) -> None:
        """Insert rows encoded by ``prepare`` (again after a failure: the same rows)."""
        prepared.send(self.writer)

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
    return ParsedEvent(event, int(occurred_ms), local_date, zone_label, event_id, student_id)
