"""What both batch routes of docs/ingest.md share: each event checked by the worker's own parser,
then the accepted ones produced to ``learning-events``, acknowledged as a batch.

``check_event`` runs ``schemas.events.parse_event`` (the function the worker
parses every Kafka message with) on the bytes that will be produced, with the
worker's limits (``EDUKNIT_MAX_FUTURE_SECONDS``, ``EDUKNIT_MAX_EVENT_BYTES``): an
event the API accepts is one the worker counts, and one the worker would send
to the dead-letter topic is refused here, naming the same field for the same
reason. When a rule changes in ``schemas.events``, it changes here too.

``publish_all`` produces the accepted events through the app's
``EventPublisher`` (the producer of POST progress/update: key = studentId,
``acks=all``), all at once (one wait for the batch when the publisher has
``publish_batch``, else one per event), and returns when the broker
acknowledged every one; if any could not be produced it raises
``PublishError`` and the route answers 503. Some of that batch may be in Kafka
then: re-sending it is safe, the worker counts each ``eventId`` once (docs/api.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import orjson
from fastapi.concurrency import run_in_threadpool

from api.publisher import EventPublisher, PublishError
from infra.settings import Settings
from schemas.errors import InvalidMessage
from schemas.events import parse_event

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventRules:
    """The worker's limits at one moment (the request's clock)."""

    now: dt.datetime
    max_future: dt.timedelta
    max_bytes: int

    @classmethod
    def of(cls, settings: Settings, now: dt.datetime) -> EventRules:
        return cls(now, dt.timedelta(seconds=settings.max_future_seconds), settings.max_event_bytes)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event the worker will count, with the key it is produced under."""

    student_id: str
    event: dict[str, Any]


def check_event(event: object, rules: EventRules) -> Accepted | InvalidMessage:
    """``event`` accepted, or the ``InvalidMessage`` the worker would dead-letter it with."""
    try:
        parsed = parse_event(
            orjson.dumps(event), now=rules.now, max_future=rules.max_future,
            max_bytes=rules.max_bytes,
        )  # fmt: skip
    except InvalidMessage as problem:
        return problem
    assert isinstance(event, dict)  # parse_event accepts JSON objects only
    return Accepted(parsed.student_id, event)


# Items from which a body is checked on the thread pool: below, it holds the event loop
# for at most ~5-15 ms (20-60 µs each), less than the thread hop and the GIL hand-offs
# cost a batch of 100 (Open edX's default) in throughput (BENCHMARKS.md, § HTTP ingest).
OFF_THE_LOOP_AT = 250


async def off_the_loop(check: Callable[[Any, EventRules], T], items: Any, rules: EventRules) -> T:
    """``check(items, rules)``: on the thread pool for a body of many items (1,000
    would hold the event loop, and every other request of the process, for
    20-60 ms), else here."""
    if isinstance(items, list) and len(items) >= OFF_THE_LOOP_AT:
        return await run_in_threadpool(check, items, rules)
    return check(items, rules)


@runtime_checkable
class BatchPublisher(Protocol):
    """A publisher that produces a batch and waits for all of it at once
    (``KafkaEventPublisher.publish_batch``: one future per batch, not per event)."""

    async def publish_batch(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None: ...


async def publish_all(publisher: EventPublisher, batch: Sequence[Accepted]) -> None:
    """Produce every event of ``batch``; ``PublishError`` unless all were acknowledged."""
    if not batch:
        return
    if isinstance(publisher, BatchPublisher):
        try:
            await publisher.publish_batch([(item.student_id, item.event) for item in batch])
        except PublishError as exc:
            log.warning("a batch of %d events was not all produced: %s", len(batch), exc)
            raise
        return
    outcomes = await asyncio.gather(
        *(publisher.publish(item.student_id, item.event) for item in batch),
        return_exceptions=True,
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        for failure in failures:
            if not isinstance(failure, Exception):  # cancellation: not a producer failure
                raise failure
        log.warning(
            "%d of %d events could not be produced: %s", len(failures), len(batch), failures[0]
        )
        raise PublishError(f"{len(failures)} of {len(batch)} events could not be produced")
