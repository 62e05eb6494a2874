"""The full quixstreams peer: the worker's whole job in quixstreams (runs in ``bench/.venv-quix``).

``PYTHONPATH=. bench/.venv-quix/bin/python -m bench.quix_full --bootstrap HOST:PORT
--expect N --data-dir D --state-dir S`` consumes ``learning-events`` (and
``course-catalog``) from the beginning and does what the project's worker does,
written the way a quixstreams team would, with the work held equal by importing
the project's pure code:

- ``app.dataframe(events)`` with one stateful ``apply`` per message
  (``bench.quix_rows.process_message``): ``schemas.events.parse_event`` and the
  worker's key check (invalid messages become dead letters), dedup by an
  ``id:<eventId>`` key in the student's keyed state (exact, no time horizon), and
  every rule by ``streams.student_state.StudentState``, kept in the keyed state as its
  ``to_dict()`` under ``"s"`` (RocksDB + changelog topic, at-least-once);
- a ``BatchingSink`` (``EventsSink``) that, per ``write(batch)`` (one per
  partition and checkpoint), builds the worker's rows with ``streams.rows``
  (``bench.quix_rows.batch_tables``) and inserts them with the worker's
  ``streams.sink.ClickHouseSink`` into an embedded engine in ``D/clickhouse``;
  dead letters go to ``learning-events-dlq`` first, as the worker sends them;
- ``app.dataframe(catalog)`` into a ``CatalogSink``: ``streams.catalog.catalog_rows``
  into ``course_catalog`` (the API's progress needs it).

Settings: the narrow peer's consumer settings (session 6 s, heartbeat 1 s: Tansu's
group join waits half the session timeout; earliest; at-least-once) and its
``commit_interval`` of 0.5 s. A checkpoint is what makes rows visible, so it is
kept at 0.5 s for the contract's freshness (the worker's p99 produce → /realtime is
under 1 s); 1 s was ~4 % faster at 60k events. The young-generation GC threshold
is the worker's (1M allocations, ``streams.app``): ~5 % at 60k events.

No ``student_state`` snapshots: quixstreams' changelog is its recovery. When the
sink has written all ``N`` event messages (duplicates and invalid ones included)
and the ``--expect-catalog`` catalog messages, it prints ``BENCH-RESULT {json}``
(``first``: wall time of the first event message consumed, ``last``: when the
write that completed the N-th returned) and stops the app, which closes the
engine, so the verifier can open the data dir in its own process.

``bench/quix_agg.py`` is the narrow peer: dedup, points and minutes per local day
only, into a dict, imports nothing from the project. This one does the worker's
work (every docs/api.md § Metric rules metric, six ClickHouse tables, the dashboards) with the same
code, so the two frameworks can be compared with the work held equal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from quixstreams import Application, State, message_context
from quixstreams.kafka import Producer
from quixstreams.sinks import BatchingSink, SinkBatch

from bench.quix_rows import Outcome, batch_tables, process_message
from infra.clickhouse import close_shared, migrate, shared_client
from schemas import catalog as catalog_schema
from schemas import dead_letter as dlq_schema
from schemas import events as events_schema
from schemas.dead_letter import DeadLetter
from streams.catalog import catalog_rows
from streams.processor import Message, dead_letter_row
from streams.rows import Row
from streams.sink import ClickHouseSink

GC_YOUNG_THRESHOLD = 1_000_000  # as the worker (streams.housekeeping): see main()
SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}  # Tansu: short group timeouts


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Engine:
    """The embedded ClickHouse both sinks write to, and the strictly increasing versions."""

    def __init__(self, data_dir: Path) -> None:
        self.client = shared_client(f"chdb://{data_dir / 'clickhouse'}")  # opened, migrated
        migrate(self.client)  # already done by shared_client: harmless
        self.sink = ClickHouseSink(self.client, embedded_engine=True)
        self.last_version = 0

    def next_version(self) -> int:
        self.last_version = max(self.last_version + 1, time.time_ns())
        return self.last_version

    def write(self, tables: dict[str, list[Row]]) -> None:
        prepared = self.sink.prepare(tables)
        try:
            self.sink.send(prepared)
        finally:
            prepared.close()


class Progress:
    """What both sinks have written, and the stop once everything expected is in."""

    def __init__(self, app: Application, expect: int, expect_catalog: int) -> None:
        self.app, self.expect, self.expect_catalog = app, expect, expect_catalog
        self.first = 0.0
        self.events = self.counted = self.duplicates = self.invalid = self.writes = 0
        self.catalog = 0
        self.done = False

    def stamp(self, value: Any) -> None:
        if not self.first:
            self.first = time.time()

    def check(self) -> None:
        if self.done or self.events < self.expect or self.catalog < self.expect_catalog:
            return
        self.done = True
        result = {
            "first": self.first, "last": time.time(), "messages": self.events,
            "counted": self.counted, "duplicates": self.duplicates, "invalid": self.invalid,
            "writes": self.writes, "catalog": self.catalog,
        }  # fmt: skip
        print("BENCH-RESULT " + json.dumps(result), flush=True)
        self.app.stop()


class EventsSink(BatchingSink):
    """The worker's rows of each partition's batch, into ClickHouse (one write per batch)."""

    def __init__(self, engine: Engine, progress: Progress, dlq: DeadLetterProducer) -> None:
        super().__init__()
        self.engine, self.progress, self.dlq = engine, progress, dlq

    def write(self, batch: SinkBatch) -> None:
        built = batch_tables((item.value for item in batch), utc_now(), self.engine.next_version())
        self.dlq.send(built.letters)  # as the worker: dead letters to Kafka before the rows
        if built.tables:
            self.engine.write(built.tables)
        progress = self.progress
        progress.events += built.messages
        progress.counted += built.counted
        progress.duplicates += built.duplicates
        progress.invalid += len(built.letters)
        progress.writes += 1
        progress.check()


class CatalogSink(BatchingSink):
    """``course-catalog`` messages into ``course_catalog`` (and dead letters)."""

    def __init__(self, engine: Engine, progress: Progress, dlq: DeadLetterProducer) -> None:
        super().__init__()
        self.engine, self.progress, self.dlq = engine, progress, dlq

    def write(self, batch: SinkBatch) -> None:
        messages = [
            Message(batch.topic, batch.partition, item.offset, item.key, item.value)
            for item in batch
        ]
        found, letters = catalog_rows(messages, utc_now(), self.engine.next_version)
        tables: dict[str, list[Row]] = {"course_catalog": found}
        if letters:
            tables["dead_letters"] = [dead_letter_row(letter) for letter in letters]
        self.dlq.send(letters)
        self.engine.write(tables)
        self.progress.catalog += len(messages)
        self.progress.check()


class DeadLetterProducer:
    """Sends dead letters to ``learning-events-dlq`` and waits until they are delivered
    (a producer of its own, made when the first one comes: the workload has none)."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.producer: Producer | None = None

    def send(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        if self.producer is None:
            self.producer = self.app.get_producer()
        for letter in letters:
            key = letter.key.encode() if letter.key is not None else None
            self.producer.produce(dlq_schema.TOPIC, value=letter.to_json(), key=key)
        if self.producer.flush(30):
            raise RuntimeError("dead letters not delivered")

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(30)


def process(
    value: bytes | None, key: bytes | None, _ts: int, _headers: Any, state: State
) -> Outcome:
    """The stateful step (``apply(..., stateful=True, metadata=True)``)."""
    context = message_context()
    return process_message(
        value, key, context.topic, context.partition, context.offset, state, utc_now()
    )


def build_app(args: argparse.Namespace) -> tuple[Application, Progress, Engine, DeadLetterProducer]:
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        consumer_extra_config=SESSION,
        processing_guarantee="at-least-once",
    )
    engine = Engine(Path(args.data_dir))
    progress = Progress(app, args.expect, args.expect_catalog)
    dlq = DeadLetterProducer(app)
    events = app.topic(events_schema.TOPIC, key_deserializer="bytes", value_deserializer="bytes")
    catalog = app.topic(catalog_schema.TOPIC, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(events)
    sdf = sdf.update(progress.stamp).apply(process, stateful=True, metadata=True)
    sdf.sink(EventsSink(engine, progress, dlq))
    app.dataframe(catalog).sink(CatalogSink(engine, progress, dlq))
    return app, progress, engine, dlq


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--expect", type=int, required=True, help="learning-events messages")
    parser.add_argument("--expect-catalog", type=int, default=0, help="course-catalog messages")
    parser.add_argument("--data-dir", required=True, help="the embedded engine's parent dir")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--group", default=f"bench-quix-full-{int(time.time())}")
    parser.add_argument("--commit-interval", type=float, default=0.5, help="seconds")
    parser.add_argument("--gc-young", type=int, default=GC_YOUNG_THRESHOLD,
                        help="allocations between young-generation collections")  # fmt: skip
    args = parser.parse_args(argv)
    gc.set_threshold(args.gc_young, 50, 100)
    app, progress, _engine, dlq = build_app(args)
    try:
        app.run()
    finally:
        dlq.close()
        close_shared()
    return 0 if progress.done else 1


if __name__ == "__main__":
    sys.exit(main())
