"""``eduknit resync``: rebuild students' aggregates and dashboards from ``learning_events``.

With Kafka reachable (``make run`` going, or a deployment's Kafka), nothing is
written from here: one control message per student goes to ``learning-events``,
keyed by the student, and the worker that owns the student rebuilds it between
two batches (``streams.resync``: one writer, ordered with the student's events,
so no event is lost or counted twice). Progress is read from the worker group's
committed offsets: a control is done once the worker acknowledged its offset,
which it does only after the rebuilt rows are in ClickHouse. Controls go in
waves of ``--wave`` students (default ``streams.resync.WAVE_STUDENTS``), the next wave only
once the worker applied the last: the worker applies a batch's controls before
its events, so one wave of them all held live events back for the whole
rebuild (BENCHMARKS.md, § Operations); a wave holds them back ~1-2 s.

With no Kafka and the embedded engine free (no ``make run`` on this data
directory: the engine's lock shows no worker can be writing), the rebuild runs
here, with the same code, and writes directly. Against a ClickHouse server it
always goes through Kafka: a worker may be running.

Idempotent: a rebuild from the same events writes the same rows (newer versions).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid
from typing import IO, Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from eduknit.ops_reader import DirectReader, OpsError, Reader, open_engine, open_reader
from eduknit.progress import Progress
from infra import ops_queries
from infra.settings import Settings
from schemas import events as events_schema
from streams import resync
from streams.app import VersionClock
from streams.sink import ClickHouseSink

WORKER_GROUP = "eduknit-worker"
POLL_SECONDS = 0.5
STALL_WARNING = 30.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def kafka_reachable(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
    try:
        admin.list_topics(timeout=3)
        return True
    except KafkaException:
        return False


def event_counts(reader: Reader, students: list[str] | None) -> dict[str, int]:
    """Counted events per student (every student when ``students`` is None)."""
    if students is None:
        return {row[0]: int(row[1]) for row in reader.rows("counts")}
    counts: dict[str, int] = {}
    for start in range(0, len(students), ops_queries.MAX_IDS):
        part = students[start : start + ops_queries.MAX_IDS]
        counts.update({r[0]: int(r[1]) for r in reader.rows("counts", ops_queries.by_ids(part))})
    return counts


# ------------------------------------------------------------------ through Kafka
def send_controls(
    bootstrap: str, students: list[str], request_id: str
) -> dict[str, tuple[int, int]]:
    """Produce a control per student; return each one's (partition, offset)."""
    placed: dict[str, tuple[int, int]] = {}
    failed: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        student = msg.key().decode()
        if err is not None:
            failed.append(f"{student}: {err}")
        else:
            placed[student] = (msg.partition(), msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for student in students:
        value = resync.control_message(student, request_id)
        while True:
            try:
                producer.produce(
                    events_schema.TOPIC, key=student.encode(), value=value, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if left or failed:
        raise OpsError(f"{left + len(failed)} control messages not delivered: {failed[:3]}")
    return placed


def committed(bootstrap: str, partitions: set[int]) -> dict[int, int]:
    """The worker group's committed offsets (-1 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": WORKER_GROUP})
    try:
        tps = [TopicPartition(events_schema.TOPIC, p) for p in sorted(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def wait_applied(
    bootstrap: str,
    placed: dict[str, tuple[int, int]],
    counts: dict[str, int],
    progress: Progress,
    deadline: float,
    err: IO[str],
    before: tuple[int, int] = (0, 0),
) -> int:
    """Wait until the worker acknowledged every control (or ``deadline``, monotonic);
    return how many it did. ``before``: (students, events) done by earlier waves."""
    partitions = {p for p, _ in placed.values()}
    last_change, last_done = time.monotonic(), -1
    while True:
        offsets = committed(bootstrap, partitions)
        done = [s for s, (p, o) in placed.items() if offsets.get(p, -1) > o]
        events = sum(counts.get(s, 0) for s in done)
        progress.update(before[0] + len(done), before[1] + events)
        if len(done) == len(placed):
            return len(done)
        if len(done) != last_done:
            last_change, last_done = time.monotonic(), len(done)
        elif time.monotonic() - last_change > STALL_WARNING:
            print(f"resync: no progress for {STALL_WARNING:.0f} s: is a worker running?", file=err)
            last_change = time.monotonic()
        if time.monotonic() > deadline:
            return len(done)
        time.sleep(POLL_SECONDS)


# ------------------------------------------------------------------ offline
def rebuild_here(
    client: Any,
    settings: Settings,
    students: list[str],
    counts: dict[str, int],
    progress: Progress,
) -> int:
    """Rebuild in this process, which holds the embedded engine (so no worker runs)."""
    sink = ClickHouseSink(client, embedded_engine=True)
    versions = VersionClock()
    versions.last = sink.max_version()
    now = utc_now()
    prune_before = int(now.timestamp() * 1000) - int(settings.recent_ids_days * 86_400_000)
    done = events = 0
    for start in range(0, len(students), resync.CHUNK_STUDENTS):
        part = students[start : start + resync.CHUNK_STUDENTS]
        controls = [resync.Control(s, 0, "offline") for s in part]  # partition: set on load
        rebuilt = resync.rebuild_rows(
            sink, controls, now, versions.next(), versions.next(), prune_before
        )
        sink.write(rebuilt.tables)
        sink.write({"student_state": rebuilt.snapshot})
        done += len(part)
        events += sum(counts.get(s, 0) for s in part)
        progress.update(done, events)
    return done


def run_resync(
    settings: Settings,
    students: list[str],
    everyone: bool,
    *,
    via: str | None = None,
    timeout: float = 3600.0,
    wave: int = resync.WAVE_STUDENTS,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """The command: 0 when every student was rebuilt, 1 otherwise, 2 when it cannot run."""
    started = time.monotonic()
    bootstrap = settings.bootstrap_servers
    through_kafka = kafka_reachable(bootstrap)
    if not through_kafka and not settings.embedded_clickhouse:
        print(
            f"resync: Kafka at {bootstrap} cannot be reached; the worker applies a resync, "
            "so Kafka is needed with a ClickHouse server",
            file=err,
        )
        return 2
    counts: dict[str, int] = {}
    try:
        if through_kafka:
            try:
                reader: Reader | None = open_reader(settings, via)
            except OpsError as exc:  # the student list or counts are then unknown
                if everyone:
                    raise
                print(f"resync: counts unavailable ({exc}); going on without", file=err)
                reader = None
            if reader is not None:
                try:
                    counts = event_counts(reader, None if everyone else students)
                finally:
                    reader.close()
            if everyone:
                students = sorted(counts)
            request_id = uuid.uuid4().hex
            print(
                f"resync: {len(students):,} students through Kafka {bootstrap} "
                f"(request {request_id})",
                file=out,
            )
            progress = Progress("resync", len(students), "students")
            deadline = time.monotonic() + timeout
            done = events_done = 0
            try:
                for start in range(0, len(students), max(1, wave)):
                    part = students[start : start + max(1, wave)]
                    placed = send_controls(bootstrap, part, request_id)
                    applied = wait_applied(
                        bootstrap, placed, counts, progress, deadline, err, (done, events_done)
                    )
                    done += applied
                    events_done += sum(counts.get(s, 0) for s in part)
                    if applied < len(part):  # the deadline passed
                        break
            finally:
                progress.close()
        else:
            print(
                f"resync: Kafka at {bootstrap} is not running: rebuilding here, in the "
                "embedded engine (no worker can be running)",
                file=out,
            )
            engine = DirectReader(open_engine(settings), "the embedded engine")
            try:
                counts = event_counts(engine, None if everyone else students)
                if everyone:
                    students = sorted(counts)
                progress = Progress("resync", len(students), "students")
                try:
                    done = rebuild_here(engine.client, settings, students, counts, progress)
                finally:
                    progress.close()
            finally:
                engine.close()
    except OpsError as exc:
        print(f"resync: {exc}", file=err)
        return 2
    seconds = time.monotonic() - started
    events = sum(counts.get(s, 0) for s in students)
    print(
        f"resync: {done:,} of {len(students):,} students rebuilt ({events:,} counted events) "
        f"in {seconds:,.1f} s ({done / max(seconds, 1e-9):,.0f} students/s)",
        file=out,
    )
    return 0 if done == len(students) else 1
