"""Resync: rebuild students from ``learning_events``, applied by the worker itself.

``eduknit resync`` does not write to ClickHouse: it produces one control message
per student to ``learning-events``, keyed by the student like the student's
events, so it lands in the same partition, ordered with them, and reaches the
one worker that owns the student's state. There is never a second writer.

A control message is JSON starting with ``CONTROL_PREFIX``:
``{"eduknitControl": "resync", "studentId": "s1", "requestId": "…"}``. The
worker takes them out of a batch before its events are processed
(``split_controls``) and then, between batches (``ResyncApplier.apply``):

1. waits until the batch before is written (every event counted so far is then
   in ``learning_events``);
2. drops the students' cached states (objects, frozen, packed);
3. rebuilds each state from all its counted events (``streams.consistency.rebuild``),
   not from its snapshot;
4. writes every row of those students (all courses, all days, summary,
   dashboard) with a new version, then a snapshot of the rebuilt states, and
   keeps the states in the cache;
5. only then processes the batch's events, on top of the rebuilt states.

Events of those students anywhere in the batch (before or after the control in
the partition) are not in ``learning_events`` yet, so the rebuild does not hold
them and step 5 counts them once; events of earlier batches are in it and are
not applied again. The batch (controls included) is acknowledged after its own
write, so a crash replays the controls too: a rebuild twice gives the same rows
(idempotent). The rebuild's reads and rules run on a thread, in chunks, so the
event loop keeps serving Kafka heartbeats.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from infra import ops_queries
from streams import consistency, metrics, rows
from streams.processor import PRUNE_MARGIN_MS, EventProcessor, Message
from streams.rows import Row
from streams.sink import ClickHouseSink
from streams.student_state import StudentState

log = logging.getLogger("eduknit.worker")

CONTROL_PREFIX = b'{"eduknitControl":'
RESYNC = "resync"
CHUNK_STUDENTS = 500  # students rebuilt per read and per write
# Controls ``eduknit resync`` has in flight at once: the worker rebuilds a batch's students
# before its events, so a wave holds live events back ~1-2 s (BENCHMARKS.md, § Operations).
WAVE_STUDENTS = 200


def control_message(student_id: str, request_id: str) -> bytes:
    """The value of the resync control message of one student (key: the student id)."""
    return orjson.dumps(
        {"eduknitControl": RESYNC, "studentId": student_id, "requestId": request_id}
    )


@dataclass(slots=True, frozen=True)
class Control:
    """A resync request for one student, as the worker read it."""

    student_id: str
    partition: int
    request_id: str


def split_controls(messages: list[Message]) -> tuple[list[Message], list[Control]]:
    """(the other messages, resync controls) of a batch, each in their order.

    A control is recognised by the start of its value, so the check costs one
    ``startswith`` per message. A malformed one (not JSON, not a resync request,
    or keyed by another id than its student's) stays with the other messages:
    the processor dead-letters it as an invalid event.
    """
    prefix = CONTROL_PREFIX
    if not any(m.value is not None and m.value.startswith(prefix) for m in messages):
        return messages, []
    others: list[Message] = []
    controls: list[Control] = []
    for message in messages:
        value = message.value
        control = _parse(message) if value is not None and value.startswith(prefix) else None
        if control is None:
            others.append(message)
        else:
            controls.append(control)
    return others, controls


def _parse(message: Message) -> Control | None:
    try:
        body: Any = orjson.loads(message.value or b"")
    except orjson.JSONDecodeError:
        return None
    student = body.get("studentId") if isinstance(body, dict) else None
    if (
        body.get("eduknitControl") != RESYNC
        or not isinstance(student, str)
        or not student
        or message.key != student.encode()
    ):
        return None
    return Control(student, message.partition, str(body.get("requestId", "")))


@dataclass(slots=True)
class Rebuilt:
    """The rows of a chunk of rebuilt students and their states."""

    tables: dict[str, list[Row]]
    snapshot: list[Row]
    states: list[StudentState]
    events: int


def rebuild_rows(
    sink: ClickHouseSink,
    controls: list[Control],
    now: dt.datetime,
    version: int,
    snapshot_version: int,
    prune_before: int,
) -> Rebuilt:
    """Read the students' counted events and compute every row of theirs (blocking).

    Students without a counted event have nothing to rebuild and are skipped.
    """
    partitions = {c.student_id: c.partition for c in controls}
    sql, parameters = ops_queries.statement("events", ops_queries.by_ids(list(partitions)))
    event_rows = sink.client.query(sql, parameters=parameters).result_rows
    grouped = consistency.group_events(event_rows)
    tables: dict[str, list[Row]] = {
        "student_courses": [],
        "student_course_daily": [],
        "student_summary": [],
        "student_dashboard": [],
    }
    snapshot: list[Row] = []
    states: list[StudentState] = []
    for sid, mine in grouped.items():
        state = consistency.rebuild(sid, mine, partitions[sid])
        state.prune_recent_ids(prune_before)  # as a state that never left memory
        courses, days, summary, dashboard = rows.student_rows(state, now, version)
        tables["student_courses"] += courses
        tables["student_course_daily"] += days
        tables["student_summary"].append(summary)
        tables["student_dashboard"].append(dashboard)
        snapshot.append(rows.state_row(state, snapshot_version))
        state.clear_dirty()
        state.derived.clear()
        states.append(state)
    return Rebuilt(tables, snapshot, states, len(event_rows))


class ResyncApplier:
    """Applies resync controls between batches (see the module)."""

    def __init__(
        self,
        processor: EventProcessor,
        sink: ClickHouseSink,
        write: Callable[..., Any],
        next_version: Callable[[], int],
    ) -> None:
        """``write(*tables)`` writes row dicts until ClickHouse took them (awaitable)."""
        self.processor = processor
        self.sink = sink
        self.write = write
        self.next_version = next_version

    async def apply(self, controls: list[Control], now: dt.datetime) -> int:
        """Rebuild and write the students of ``controls``; return how many were rebuilt.

        Call only when every batch before is written, before the batch of the
        controls is processed.
        """
        unique = list({c.student_id: c for c in controls}.values())
        started = time.perf_counter()
        prune_before = (
            int(now.timestamp() * 1000) - self.processor.recent_window_ms - PRUNE_MARGIN_MS
        )
        loop = asyncio.get_running_loop()
        rebuilt = events = 0
        for start in range(0, len(unique), CHUNK_STUDENTS):
            chunk = unique[start : start + CHUNK_STUDENTS]
            self.processor.forget(c.student_id for c in chunk)
            version, snapshot_version = self.next_version(), self.next_version()
            result = await loop.run_in_executor(
                None, rebuild_rows, self.sink, chunk, now, version, snapshot_version, prune_before
            )
            await self.write(result.tables, {"student_state": result.snapshot})
            cache = self.processor.cache
            known = self.processor.known
            for state in result.states:
                cache.add(state)
                cache.unsnapshotted.discard(state.student_id)
                if known is not None:
                    known.add(state.student_id)
            rebuilt += len(result.states)
            events += result.events
        metrics.RESYNC_STUDENTS.inc(rebuilt)
        log.info(
            "resync: %d students rebuilt from %d counted events in %.1f ms (%d requested)",
            rebuilt,
            events,
            (time.perf_counter() - started) * 1000,
            len(unique),
        )
        return rebuilt
