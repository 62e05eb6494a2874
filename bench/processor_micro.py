"""Micro-benchmark of the worker's hot path without Faust: processing and the sink.

``python -m bench.processor_micro [--events N] [--students S] [--batch B] [--workload W]``
builds a random stream (lesson progress, quizzes, enrollments over 50 courses and
five days; ``--workload ingest``: the ingest benchmark's, ``testkit.workload``),
runs it through ``EventProcessor.process`` in batches with an empty state store, then
writes every batch's rows with ``ClickHouseSink.write`` into a fresh embedded engine,
and prints CPU microseconds per event for each part. CPU time (not wall time) is
reported because the machines are shared; the GC thresholds are the worker's.

``--hot N`` runs the worker's whole loop instead: N states kept as objects, the
rest frozen, a snapshot every ``SNAPSHOT_MAX_PENDING`` changed states (written
like the worker's, in chunks), and prints the processing, snapshot, freezing and
row-encoding parts apart, then the engine's insert per table (the worker's
embedded-engine inserts). ``--workload ingest --events 1000000 --students 100000 --hot 10000``
is the ingest benchmark's hot path without Kafka (~3 minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import tempfile
import time

import orjson

from infra.clickhouse import shared_client
from schemas.events import ParsedEvent
from streams.app import SNAPSHOT_INSERT_STATES, SNAPSHOT_MAX_PENDING
from streams.housekeeping import GC_YOUNG_THRESHOLD
from streams.known_students import KnownStudents
from streams.processor import BatchResult, EventProcessor, Message
from streams.sink import WRITE_ORDER, ClickHouseSink
from streams.student_state import StudentState

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)


class EmptyStore:
    """A deployment that has seen nothing yet."""

    def load_states(self, student_ids: list[str]) -> dict[str, StudentState]:
        return {}

    def counted_since(self, versions: dict[str, int]) -> list[ParsedEvent]:
        return []

    def counted(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()

    def known_students(self) -> KnownStudents:
        return KnownStudents(0)


def stream(events: int, students: int, seed: int = 1) -> list[Message]:
    """A random stream keyed by student, as producers send it."""
    rng = random.Random(seed)
    messages = []
    for i in range(events):
        student = f"s{rng.randrange(students)}"
        at = (NOW - dt.timedelta(minutes=rng.randrange(60 * 24 * 5))).isoformat()
        base = {"eventId": f"e{i}", "studentId": student, "courseId": f"c{rng.randrange(50)}",
                "occurredAt": at}  # fmt: skip
        roll = rng.random()
        if roll < 0.7:
            event = {**base, "type": "lesson_progress", "lessonId": f"l{rng.randrange(20)}",
                     "completed": rng.random() < 0.5, "timeSpent": rng.randint(1, 30),
                     "timezone": "Europe/Paris"}  # fmt: skip
        elif roll < 0.9:
            event = {**base, "type": "quiz_completed", "quizId": f"q{rng.randrange(3)}",
                     "score": rng.randint(0, 100), "timeSpent": 5}  # fmt: skip
        else:
            event = {**base, "type": "enrolled"}
        messages.append(Message("learning-events", 0, i, student.encode(), orjson.dumps(event)))
    return messages


def worker_loop(messages: list[Message], batch: int, hot: int) -> int:
    """The worker's loop without Kafka: CPU µs per event of each part; returns 0.

    The Python parts are timed with this thread's CPU clock (the engine's merges
    run in other threads meanwhile), each insert with the process's (the engine
    parses on its own threads), right after its batch as the worker does.
    """
    processor = EventProcessor(EmptyStore(), hot_students=hot)
    cpu: dict[str, float] = dict.fromkeys(("process", "snapshot", "freeze", "encode rows"), 0.0)
    inserts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as data:
        sink = ClickHouseSink(shared_client(f"chdb://{data}"), embedded_engine=True)
        for i in range(0, len(messages), batch):
            started = time.thread_time()
            result = processor.process(messages[i : i + batch], NOW, 2 * i + 1)
            taken = time.thread_time()
            due = len(processor.cache.unsnapshotted) >= SNAPSHOT_MAX_PENDING
            snapshot = processor.cache.snapshot_rows(2 * i + 2) if due else []
            snapshotted = time.thread_time()
            processor.cache.evict(protect=set(result.students))
            if snapshot:
                processor.cache.freeze(protect=set(result.students))
            frozen = time.thread_time()
            cpu["process"] += taken - started
            cpu["snapshot"] += snapshotted - taken
            cpu["freeze"] += frozen - snapshotted
            chunks = range(0, len(snapshot), SNAPSHOT_INSERT_STATES)
            writes = [result.tables]
            writes += [{"student_state": snapshot[c : c + SNAPSHOT_INSERT_STATES]} for c in chunks]
            for tables in writes:
                for table in WRITE_ORDER:
                    if not tables.get(table):
                        continue
                    started = time.thread_time()
                    prepared = sink.prepare({table: tables[table]})
                    cpu["encode rows"] += time.thread_time() - started
                    started = time.process_time()
                    sink.send(prepared)
                    inserts[table] = inserts.get(table, 0.0) + time.process_time() - started
                    prepared.close()
    per = 1e6 / len(messages)
    python = sum(cpu.values())
    print(f"worker loop, {hot:,} hot states: Python {python * per:.1f} µs CPU/event "
          f"({len(messages) / python:,.0f} events/s)")  # fmt: skip
    for part, seconds in cpu.items():
        print(f"  {part:12s} {seconds * per:6.1f} µs")
    print(f"engine inserts: {sum(inserts.values()) * per:.1f} µs CPU/event (all threads; "
          "background merges not included)")  # fmt: skip
    for table, seconds in inserts.items():
        print(f"  {table:20s} {seconds * per:6.1f} µs")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--students", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--workload", choices=["random", "ingest"], default="random")
    parser.add_argument("--hot", type=int, default=None, help="run the worker's loop (see above)")
    args = parser.parse_args(argv)
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)  # as the worker
    if args.workload == "ingest":
        from testkit.workload import generate

        pairs = generate(args.events, args.students, sample_students=0, now=NOW).messages
        messages = [Message("learning-events", i % 8, i, k, v) for i, (k, v) in enumerate(pairs)]
    else:
        messages = stream(args.events, args.students)
    if args.hot is not None:
        return worker_loop(messages, args.batch, args.hot)
    processor = EventProcessor(EmptyStore())
    started = time.process_time()
    results: list[BatchResult] = [
        processor.process(messages[i : i + args.batch], NOW, i + 1)
        for i in range(0, len(messages), args.batch)
    ]
    processing = time.process_time() - started
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as data:
        sink = ClickHouseSink(shared_client(f"chdb://{data}"))
        started = time.process_time()
        rows = sum(sink.write(result.tables) for result in results)
        writing = time.process_time() - started
    per = 1e6 / len(messages)
    print(f"{args.workload} workload: events {len(messages)}, students {args.students}, "
          f"batch {args.batch}, rows {rows}")  # fmt: skip
    rate = len(messages) / processing
    print(f"processing: {processing * per:.1f} µs CPU/event ({rate:,.0f} events/s)")
    print(f"sink write: {writing * per:.1f} µs CPU/event (orjson + ClickHouse parse, all threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
