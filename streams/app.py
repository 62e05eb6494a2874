"""The Faust application: the ``learning-events`` loop and the ``course-catalog`` agent.

The events loop takes whole fetches from Faust's consumer (``BatchingApp``,
streams/batch_consumer.py: no per-record event, queue and stream, which cost more
than the processing), the catalog agent takes batches (``noack_take``). Each hands
its batches to the pure processing code, then commits them in the order
``streams.commit`` states: dead letters to ``learning-events-dlq``, rows to
ClickHouse (``streams.writes``: retried with backoff for as long as it takes),
and only then the batch's offsets. Offsets are never committed for a batch that
is not in ClickHouse, so a crash at any point replays it and the idempotent
processing counts each event once. Batch N+1 is processed while batch N is
written (one write in flight).

Per-student state is held by ``EventProcessor`` (in its ``StateCache``); it is
rebuilt from ClickHouse (a snapshot plus the counted events written after it)
instead of Faust changelog tables: the embedded broker keeps its topics in
memory only (a changelog would be gone after a restart) and Faust's changelog
replay on it can stop early after a restart (its end offsets are under-reported).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from clickhouse_connect.driver.exceptions import ClickHouseError
from faust.types import TP
from faust.types import Message as KafkaMessage

from infra.clickhouse import open_client
from infra.settings import Settings
from schemas import catalog as catalog_schema
from schemas import dead_letter as dlq_schema
from schemas import events as events_schema
from schemas.dead_letter import DeadLetter
from streams import metrics
from streams.batch_consumer import Batch, BatchingApp, shorten_fetch_wait
from streams.catalog import catalog_rows
from streams.commit import commit_batch
from streams.guard import EXIT_FATAL, InvalidRatioGuard, TooManyInvalid
from streams.housekeeping import EngineMemory, after_snapshot, tune_garbage_collector
from streams.lag import LagReporter
from streams.lesson_catalog import CatalogPoller, LessonCatalog
from streams.prepared_write import PreparedWrite, close_all
from streams.processor import BatchResult, EventProcessor, Message, dead_letter_row
from streams.resync import ResyncApplier, split_controls
from streams.rows import Row
from streams.sample_check import SampleCheck
from streams.sink import ClickHouseSink
from streams.writes import RetryingWriter

log = logging.getLogger("eduknit.worker")

Clock = Callable[[], dt.datetime]
# Snapshot sooner when this many states changed: only snapshotted states can be frozen
# or dropped, so the states changed since the last snapshot all stay objects (~6 KiB
# each). At 100k students: 50k ended ~75 MiB higher than 20k; 15k held the median RSS
# of the run's second half at 946-957 MiB against 992-1,012 with 20k, and 10k at
# 902-919, at the same events/s within the noise (BENCHMARKS.md, § Memory).
SNAPSHOT_MAX_PENDING = 15_000
PENDING_WRITE_GRACE = 10.0  # seconds a stopping agent waits for its write in flight
# States per snapshot insert: a snapshot holds up to SNAPSHOT_MAX_PENDING states of
# 1.5-6 KiB each, and one insert of them all held several copies of ~100 MiB of text.
SNAPSHOT_INSERT_STATES = 5_000
LAG_SECONDS = 5.0  # how often the consumer lag metric is updated
# /healthz (streams.health_server) says unhealthy once a ClickHouse write has been
# pending this long (it is retried for as long as it takes: ClickHouse is down).
WRITE_STUCK_SECONDS = 60.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class VersionClock:
    """Strictly increasing row versions (nanoseconds), also across restarts."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(self.last + 1, time.time_ns())
        return self.last


class Worker:
    """The Faust app with its agents, processor and sink."""

    def __init__(self, settings: Settings, sink: ClickHouseSink, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.sink = sink
        self.clock = clock
        self.versions = VersionClock()
        self.versions.last = sink.max_version()
        self.lessons = LessonCatalog()
        self.catalog_poller = CatalogPoller(sink.client, self.lessons)
        self.processor = EventProcessor(
            sink,
            recent_ids_days=settings.recent_ids_days,
            max_future_seconds=settings.max_future_seconds,
            max_event_bytes=settings.max_event_bytes,
            cache_students=settings.state_cache_students,
            hot_students=settings.hot_state_students,
            lessons=self.lessons,
        )
        self.writer = RetryingWriter(sink)
        self.resync = ResyncApplier(self.processor, sink, self.writer.write, self.versions.next)
        self.engine_memory = EngineMemory(
            sink.release_engine_memory, settings.engine_purge_seconds, settings.embedded_clickhouse
        )
        self._last_snapshot = time.monotonic()
        self._revoked: set[int] = set()  # partitions to forget before the next batch
        self.write_started: float | None = None  # monotonic start of the write in flight
        self.guard = InvalidRatioGuard(
            settings.invalid_window, settings.max_invalid_ratio, settings.invalid_min_count
        )
        if settings.faults:  # tests only (EDUKNIT_FAULTS=1): the ClickHouse outage switch
            from infra import faults

            faults.install(sink.client, settings.data_path)
        self.app = self._create_app()
        if settings.worker_metrics_port:  # a worker process of its own (docker-compose.yml)
            from streams.health_server import serve

            serve(settings.worker_metrics_host, settings.worker_metrics_port, self.health)

    def _create_app(self) -> BatchingApp:
        tune_garbage_collector()
        s = self.settings
        shorten_fetch_wait(s.fetch_max_wait_ms)
        app = BatchingApp(
            "eduknit-worker",
            broker=f"kafka://{s.bootstrap_servers}",
            store="memory://",
            datadir=str(s.data_path / "faust"),
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=s.partitions,
            topic_allow_declare=True,
            broker_session_timeout=6,
            broker_heartbeat_interval=1,
            broker_commit_interval=0.5,
            consumer_auto_offset_reset="earliest",
            broker_max_poll_records=s.batch_max_events,  # a fetch is at most a batch
            stream_buffer_maxsize=20000,
            producer_max_batch_size=262144,
            producer_acks=-1,
        )
        events_topic = app.topic(events_schema.TOPIC, partitions=s.partitions)
        catalog_topic = app.topic(catalog_schema.TOPIC, partitions=s.partitions)
        self.dlq_topic = app.topic(dlq_schema.TOPIC, partitions=s.partitions)
        # Up to 4 fetches of up to batch_max_events records wait: with the default 5,000,
        # the stock stream buffer's 20,000.
        self.event_batches = app.batch_queue(events_topic, max_batches=4)
        app.task(self._learning_events_task)
        app.agent(catalog_topic, name="course-catalog")(self._course_catalog)
        self.lag = LagReporter([events_schema.TOPIC, catalog_schema.TOPIC])
        app.timer(LAG_SECONDS)(self._report_lag)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)
        if s.consistency_seconds > 0:
            self.sample_check = SampleCheck(
                lambda: open_client(s.resolved_clickhouse_url), s.consistency_sample, self.clock
            )
            app.timer(s.consistency_seconds)(self._check_sample)
        return app

    # ------------------------------------------------------------------ agents
    async def _learning_events_task(self) -> None:
        """Run the events loop; a bug in it stops the worker (exit 1, the supervisor
        restarts it) instead of leaving it alive without its loop."""
        try:
            await self._learning_events()
        except (asyncio.CancelledError, SystemExit):
            raise
        except BaseException as exc:
            log.exception("learning-events loop failed")
            await self.app.crash(exc)

    async def _learning_events(self) -> None:
        """Process batch N+1 while batch N is being written (one write in flight).

        A batch is acknowledged only after its rows are in ClickHouse; writes
        happen in batch order; a state snapshot is written after the batch it
        was taken with, so it never holds an effect that is not in ClickHouse.
        """
        s = self.settings
        pending: asyncio.Future[None] | None = None
        unwritten: list[str] = []  # students of the batches not yet written
        prepared: list[PreparedWrite] = []  # encoded, not yet handed to a commit
        try:
            while True:
                batch = await self.app.take(
                    self.event_batches, s.batch_max_events, s.batch_max_seconds
                )
                started = time.perf_counter()
                if self._revoked:  # forget moved students only when nothing is unwritten
                    if pending is not None:
                        await pending
                        pending = None
                    self.processor.cache.forget_partitions(self._revoked)
                    self._revoked = set()
                messages = [_message(record) for record in batch]
                messages, controls = split_controls(messages)
                if controls:  # streams.resync: after the batch before is written
                    if pending is not None:
                        await pending
                        pending = None
                    await self.resync.apply(controls, self.clock())
                result = await self._process(messages)
                unwritten += result.students
                try:
                    self.guard.record(len(messages), len(result.dead_letters))
                except TooManyInvalid as exc:  # a broken producer: stop, do not ack this batch
                    await self._stop_loudly(exc)  # ends only by cancellation at shutdown
                    raise
                snapshot = self._snapshot_rows_if_due()
                # Encode batch N+1 while batch N is still being written: waiting first
                # left the loop idle ~20-50 ms per batch (BENCHMARKS.md, § Ingest).
                prepared = self.writer.prepare(result.tables, *_snapshot_chunks(snapshot))
                # Encoded: the rows are not needed any more, so they are not kept until
                # the write is done, through the next batch (a snapshot's texts go once
                # the states are frozen below). At 1M events / 100k students the median
                # RSS went from 888-928 to 851-868 MiB (BENCHMARKS.md, § Memory).
                result.tables = {}
                snapshotted, snapshot = bool(snapshot), []
                if pending is not None:
                    await pending  # batch N is written and acknowledged
                batch_students = set(result.students)
                cache = self.processor.cache
                cache.evict(protect=batch_students)
                if snapshotted:  # only a snapshot makes states freezable: no walk in between
                    cache.freeze(protect=batch_students)
                metrics.STATES_CACHED.set(len(cache))
                metrics.STATES_FROZEN.set(len(cache.frozen))
                unwritten = list(result.students)
                commit = commit_batch(self, batch, result, prepared, started)
                prepared = []  # the commit closes them
                pending = asyncio.ensure_future(commit)
                self.write_started = time.monotonic()
                pending.add_done_callback(self._write_done)
                await asyncio.sleep(0)  # let the write start before the next batch
        except asyncio.CancelledError:
            if pending is not None and not pending.done():
                # Let a write in progress land (a state reloaded before it would miss
                # it), but do not wait through a ClickHouse outage at shutdown.
                try:
                    await asyncio.wait_for(asyncio.shield(pending), PENDING_WRITE_GRACE)
                except (TimeoutError, asyncio.CancelledError, Exception):
                    pending.cancel()
            self.processor.forget(unwritten)  # not written: reload when resumed
            await self.engine_memory.settle(PENDING_WRITE_GRACE)  # before the engine closes
            raise
        finally:
            close_all(prepared)  # encoded, never handed to a commit

    # ------------------------------------------- the steps of ``commit_batch``
    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Produce ``letters`` to the dead-letter topic and wait for Kafka's acks."""
        if not letters:
            return
        pending = []
        for letter in letters:
            log.warning(
                "dead letter %s[%d]@%d: %s", letter.source_topic, letter.partition,
                letter.offset, letter.reason,
            )  # fmt: skip
            metrics.EVENTS_INVALID.labels(letter.source_topic, letter.field or "").inc()
            key = letter.key.encode() if letter.key is not None else None
            pending.append(await self.dlq_topic.send(key=key, value=letter.to_json()))
        await asyncio.gather(*pending)

    async def send_rows(self, prepared: list[PreparedWrite]) -> None:
        await self.writer.send(prepared)

    def written(self, result: BatchResult) -> None:
        self.processor.written(result)

    def acknowledge(self, batch: Batch) -> None:
        self.app.ack(batch)

    def after_commit(self, snapshot_states: int) -> None:
        if snapshot_states:
            cache = self.processor.cache
            log.info(
                "snapshot: %d student states; %d states kept, %d of them frozen",
                snapshot_states, len(cache), len(cache.frozen),
            )  # fmt: skip
            after_snapshot()
        self.engine_memory.release_if_due(now=bool(snapshot_states))

    async def _course_catalog(self, stream: faust.StreamT) -> None:
        async for batch in stream.noack_take(1000, self.settings.batch_max_seconds):
            messages = [_message(event.message) for event in batch]
            rows, letters = catalog_rows(messages, self.clock(), self.versions.next)
            tables: dict[str, list[Row]] = {"course_catalog": rows}
            if letters:
                tables["dead_letters"] = [dead_letter_row(letter) for letter in letters]
            await self.send_dead_letters(letters)
            await self.writer.write(tables)
            for row in rows:  # in force here at once; other workers read it from ClickHouse
                course_id, lessons, listed, deleted = row[0], row[3], row[4], row[5]
                self.lessons.apply(course_id, lessons if listed and not deleted else None)
            for event in batch:
                await stream.ack(event)
            metrics.CATALOG_UPDATES.inc(len(rows))
            log.info("catalog: %d entries, %d invalid", len(rows), len(letters))

    async def _check_sample(self) -> None:
        """The scheduled consistency check (streams.sample_check), on a thread."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.sample_check.run)
        except Exception as exc:  # read-only and retried next time: never stop the worker
            log.warning("consistency check failed (next one in %.0f s): %s",
                        self.settings.consistency_seconds, exc)  # fmt: skip

    # ------------------------------------------------------- health and lag
    def _write_done(self, _future: asyncio.Future[None]) -> None:
        self.write_started = None

    def health(self) -> str | None:
        """None while healthy, else why not (``streams.health_server``; any thread)."""
        started = self.write_started
        if started is not None and time.monotonic() - started > WRITE_STUCK_SECONDS:
            return f"a ClickHouse write has been pending for {time.monotonic() - started:.0f} s"
        return None

    async def _report_lag(self) -> None:
        """Update ``eduknit_consumer_lag`` from the consumer's own numbers (``streams.lag``)."""
        try:
            consumer = self.app.consumer
            committed = consumer._committed_offset  # type: ignore[attr-defined]
            self.lag.update(consumer.assignment(), consumer.highwater, committed)
        except Exception:  # a metric must not stop the worker (e.g. during a rebalance)
            log.debug("consumer lag not updated", exc_info=True)

    # ----------------------------------------------------------------- helpers
    def _snapshot_rows_if_due(self) -> list[Row]:
        """The states changed since the last snapshot, every few seconds (else []).

        Taken right after a batch was applied; the caller writes them after that
        batch's rows, so a snapshot never holds an effect missing from ClickHouse.
        A state is its snapshot plus the counted events written after it, so
        snapshots only bound how much a restart replays.
        """
        due = time.monotonic() - self._last_snapshot >= self.settings.snapshot_seconds
        if not due and len(self.processor.cache.unsnapshotted) < SNAPSHOT_MAX_PENDING:
            return []
        self._last_snapshot = time.monotonic()
        return self.processor.cache.snapshot_rows(self.versions.next())

    async def _process(self, messages: list[Message]) -> BatchResult:
        """Process a batch, retrying with backoff while ClickHouse look-ups fail.

        ``EventProcessor.process`` reads saved states and counted ids from
        ClickHouse before it changes any state, so a failed attempt can be
        repeated with the same messages.
        """

        async def attempt() -> BatchResult:
            self.catalog_poller.refresh_if_due()  # the lesson lists, when the catalog changed
            return self.processor.process(messages, self.clock(), self.versions.next())

        return await self.writer.retrying("read", attempt, (ClickHouseError, OSError))

    async def _stop_loudly(self, exc: TooManyInvalid) -> None:
        """Log the guard's verdict and crash the Faust worker: the process exits with
        ``EXIT_FATAL`` (3), which tells the supervisor not to restart it."""
        metrics.GUARD_STOPS.inc()
        log.critical(
            "invalid-ratio guard: %d of the last %d messages were invalid (limit %.0f%%, "
            "EDUKNIT_MAX_INVALID_RATIO); stopping the worker without acknowledging the batch",
            exc.invalid, exc.total, exc.max_ratio * 100,
        )  # fmt: skip
        # mode re-raises the crash reason once the worker has shut down: SystemExit
        # passes its ``except Exception`` (which would exit 1) and sets the exit code.
        await self.app.crash(SystemExit(EXIT_FATAL))
        # Park this agent until the shutdown cancels it: raising would make Faust's
        # supervisor restart the agent and go on dead-lettering the stream.
        await asyncio.Event().wait()

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        """Remember partitions taken away; the agent forgets their students at a safe point.

        Forgetting at once would drop states whose last batch is still being
        written: reloaded from ClickHouse before that write lands, they would miss
        it (seen after a broker restart, which revokes every partition).
        """
        self._revoked |= {tp.partition for tp in revoked if tp.topic == events_schema.TOPIC}

    async def _on_assigned(self, app: Any, assigned: set[TP], **_: Any) -> None:
        """Read the known students again: another worker may have written the students
        of partitions assigned now (the processor rebuilds the filter at its next look-up)."""
        self.processor.forget_known()


def _snapshot_chunks(snapshot: list[Row]) -> list[dict[str, list[Row]]]:
    """A snapshot's rows as writes of ``SNAPSHOT_INSERT_STATES`` states each."""
    step = SNAPSHOT_INSERT_STATES
    return [{"student_state": snapshot[i : i + step]} for i in range(0, len(snapshot), step)]


def _message(record: KafkaMessage) -> Message:
    """A Kafka record as the processor takes it."""
    return Message(record.topic, record.partition, record.offset, record.key, record.value)
