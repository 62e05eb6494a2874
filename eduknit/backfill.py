"""``eduknit import FILE``: a backfill of learning events (JSON lines) into ``learning-events``.

Each line is validated with the pipeline's own event schema
(``schemas.events.parse_event``, the worker's checks included: size, future
dates); a bad line is reported with its 1-based line number, the field and the
reason, and skipped. Lines holding only whitespace are not events and are
passed over. Valid lines go to Kafka as they are, keyed by their ``studentId``
(the partition of the student's state), waiting for the broker's
acknowledgement; ``--rate`` caps the events sent per second, so a backfill can
run beside live traffic. Running it again is safe: the pipeline counts an
``eventId`` once.

Exit code 0 when every line was sent, 1 when a line was skipped or not
delivered, 2 when the file or Kafka cannot be used.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

from confluent_kafka import KafkaException, Producer

from eduknit.progress import Progress
from infra.settings import Settings
from schemas import events as events_schema
from schemas.errors import InvalidMessage

SHOWN_BAD = 1000  # bad lines reported one by one; beyond, only counted


def lines(source: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its end) of a byte stream."""
    for number, line in enumerate(source, 1):
        yield number, line.rstrip(b"\r\n")


class Pacer:
    """Sleeps so that at most ``rate`` items per second pass (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if self.rate <= 0:
            return
        self.next_at = max(self.next_at + 1 / self.rate, time.monotonic() - 1)
        delay = self.next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def run_import(
    settings: Settings,
    path: str,
    *,
    rate: float = 0.0,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    """The command (see the module)."""
    try:
        source: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"import: cannot read {path}: {exc}", file=err)
        return 2
    size = os.fstat(source.fileno()).st_size if path != "-" else 0
    failed: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failed.append(str(error))

    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "acks": "all",
            "linger.ms": 20,
            "enable.idempotence": False,
            "message.timeout.ms": 60000,
        }
    )
    if not _reachable(producer):
        print(
            f"import: Kafka at {settings.bootstrap_servers} cannot be reached "
            "(is `make run` going?)",
            file=err,
        )
        return 2
    now = dt.datetime.now(dt.UTC)
    max_future = dt.timedelta(seconds=settings.max_future_seconds)
    pacer = Pacer(rate)
    sent = bad = 0
    started = time.monotonic()
    progress = Progress("import", size or None, "bytes" if size else "lines")
    number = 0
    try:
        for number, line in lines(source):
            progress.update(source.tell() if size else number, sent)
            if not line.strip():
                continue
            try:
                parsed = events_schema.parse_event(
                    line, now=now, max_future=max_future, max_bytes=settings.max_event_bytes
                )
            except InvalidMessage as exc:
                bad += 1
                if bad <= SHOWN_BAD:
                    where = f"{exc.field}: " if exc.field else ""
                    print(f"line {number}: {where}{exc.reason}", file=err)
                continue
            pacer.wait()
            _produce(producer, parsed.student_id.encode(), line, delivered)
            sent += 1
        progress.update(size or number, sent)
        left = producer.flush(120)
    finally:
        progress.close()
        if path != "-":
            source.close()
    if bad > SHOWN_BAD:
        print(f"... {bad - SHOWN_BAD} more bad lines not shown", file=err)
    undelivered = left + len(failed)
    seconds = time.monotonic() - started
    print(
        f"import: {sent - undelivered:,} events sent to {events_schema.TOPIC} in "
        f"{seconds:,.1f} s ({sent / max(seconds, 1e-9):,.0f} events/s); {bad:,} lines "
        f"skipped; {undelivered:,} not delivered",
        file=out,
    )
    if failed:
        print(f"import: delivery errors, e.g. {failed[0]}: run it again (safe)", file=err)
    return 1 if bad or undelivered else 0


def _reachable(producer: Producer) -> bool:
    try:
        producer.list_topics(timeout=5)
        return True
    except KafkaException:
        return False


def _produce(producer: Producer, key: bytes, value: bytes, callback: Any) -> None:
    while True:
        try:
            producer.produce(events_schema.TOPIC, key=key, value=value, on_delivery=callback)
            break
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
    producer.poll(0)
