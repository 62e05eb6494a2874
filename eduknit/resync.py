"""``eduknit resync``: rebuild students' aggregates and dashboards from ``learning_events``.

With Kafka reachable (``make run`` going, or a deployment's Kafka), nothing is
written from here: one control message per student goes to ``learning-events``,
keyed by the student, and the worker that owns the student rebuilds it between
two batches (``streams.resync``: one writer, ordered with the student's events,
so no event is lost or counted twice). Progress is read from the worker group's
committed offsets: a control is done once the worker acknowledged its offset,
which it does only after the rebuilt rows are in ClickHouse. Controls go in
waves of ``--wave`` students (default ``streams.resync.WAVE_STUDENTS``), two waves
in the partitions at a time: a new wave is sent once the worker applied the
oldest. The worker applies a batch's controls before its events, so one burst
of them all held live events back for the whole rebuild (BENCHMARKS.md,
§ Operations); with waves, a batch holds live events back for at most two
waves' rebuild (~1-2 s), and the second wave keeps the worker busy while this
command waits to see the first one's commit.

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
from collections import deque
from dataclasses import dataclass
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
POLL_SECONDS = 0.2
# Waves of controls in the partitions at once: the next is there when the worker is done
# with one, so it never waits for the command to see a commit (2x the students/s at
# 10k students, BENCHMARKS.md, § Operations); a batch then holds at most two waves.
IN_FLIGHT_WAVES = 2
STALL_WARNING = 30.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def kafka_reachable(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    # log_level 0: a Kafka that is not running is an answer here, not an error to print
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000, "log_level": 0})
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
class ControlChannel:
    """Sends control messages and reads the worker group's committed offsets, with one
    producer and one consumer for the whole command."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": WORKER_GROUP})

    def send(self, students: list[str], request_id: str) -> dict[str, tuple[int, int]]:
        """Produce a control per student; return each one's (partition, offset)."""
        placed: dict[str, tuple[int, int]] = {}
        failed: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            student = msg.key().decode()
            if err is not None:
                failed.append(f"{student}: {err}")
            else:
                placed[student] = (msg.partition(), msg.offset())

        for student in students:
            value = resync.control_message(student, request_id)
            while True:
                try:
                    self.producer.produce(
                        events_schema.TOPIC, key=student.encode(), value=value,
                        on_delivery=delivered,
                    )  # fmt: skip
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)
        left = self.producer.flush(60)
        if left or failed:
            raise OpsError(f"{left + len(failed)} control messages not delivered: {failed[:3]}")
        return placed

    def committed(self, partitions: set[int]) -> dict[int, int]:
        """The worker group's committed offsets (-1 when none)."""
        tps = [TopicPartition(events_schema.TOPIC, p) for p in sorted(partitions)]
        return {tp.partition: tp.offset for tp in self.consumer.committed(tps, timeout=10)}

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()


@dataclass(slots=True)
class Wave:
    """Controls sent together: where each student's landed, and their counted events."""

    placed: dict[str, tuple[int, int]]
    events: int


def wait_applied(
    channel: ControlChannel,
    waves: deque[Wave],
    progress: Progress,
    deadline: float,
    err: IO[str],
    before: tuple[int, int] = (0, 0),
) -> int:
    """Wait until the worker acknowledged every control of the oldest wave in flight
    (or ``deadline``, monotonic); return how many of its controls it did.

    ``before``: (students, events) of the waves done already. Progress counts the
    controls of every wave in flight (the worker may take two in one batch).
    """
    oldest = waves[0]
    partitions = {p for wave in waves for p, _ in wave.placed.values()}
    last_change, last_done = time.monotonic(), -1
    while True:
        offsets = channel.committed(partitions)
        applied = [
            sum(1 for p, o in wave.placed.values() if offsets.get(p, -1) > o) for wave in waves
        ]
        students = before[0] + sum(applied)
        events = before[1] + sum(
            round(wave.events * n / max(len(wave.placed), 1))
            for wave, n in zip(waves, applied, strict=True)
        )
        progress.update(students, events)
        done = applied[0]  # of the oldest wave
        if done == len(oldest.placed):
            return done
        if students != last_done:
            last_change, last_done = time.monotonic(), students
        elif time.monotonic() - last_change > STALL_WARNING:
            print(
                f"resync: no progress for {STALL_WARNING:.0f} s: is a worker running, or is it "
                "behind on live events (eduknit_consumer_lag)?",
                file=err,
            )
            last_change = time.monotonic()
        if time.monotonic() > deadline:
            return done
        time.sleep(POLL_SECONDS)


def resync_through_kafka(
    bootstrap: str,
    students: list[str],
    counts: dict[str, int],
    request_id: str,
    wave_size: int,
    deadline: float,
    err: IO[str],
) -> int:
    """Send the controls in waves, ``IN_FLIGHT_WAVES`` at a time; return how many
    students the worker rebuilt before ``deadline``."""
    progress = Progress("resync", len(students), "students")
    channel = ControlChannel(bootstrap)
    size = max(1, wave_size)
    parts = [students[start : start + size] for start in range(0, len(students), size)]
    in_flight: deque[Wave] = deque()
    done = events_done = 0
    try:
        sent = 0
        while sent < len(parts) or in_flight:
            while sent < len(parts) and len(in_flight) < IN_FLIGHT_WAVES:
                part = parts[sent]
                placed = channel.send(part, request_id)
                in_flight.append(Wave(placed, sum(counts.get(s, 0) for s in part)))
                sent += 1
            applied = wait_applied(channel, in_flight, progress, deadline, err,
                                   (done, events_done))  # fmt: skip
            wave = in_flight.popleft()
            done += applied
            events_done += wave.events
            if applied < len(wave.placed):  # the deadline passed
                break
    finally:
        progress.close()
        channel.close()
    return done


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
            done = resync_through_kafka(
                bootstrap, students, counts, request_id, wave, time.monotonic() + timeout, err
            )
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
