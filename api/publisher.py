"""Producing learning events to Kafka from the API.

``EventPublisher`` is what the routes need: ``publish`` returns once the broker
acknowledged the message (or raises ``PublishError``), ``ready`` says whether
the broker answers. ``KafkaEventPublisher`` is the real one (its
``publish_batch`` waits once for a whole batch: the docs/ingest.md routes): a
``confluent_kafka.Producer`` with ``acks=all``, keyed by studentId so one
student's events stay in one partition. Not idempotent on purpose: an idempotent
producer never delivers again to a freshly restarted memory-only broker (its
producer id and sequence numbers are unknown there), and a retried send is
harmless anyway (the pipeline counts each eventId once). A background
thread serves the producer's delivery callbacks and resolves each waiting
request's future on its event loop, so ``publish`` never blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from confluent_kafka import KafkaException, Producer

from schemas.events import TOPIC

log = logging.getLogger(__name__)

READY_CACHE_SECONDS = 1.5


class PublishError(RuntimeError):
    """The event could not be produced (broker down, timeout, queue full)."""


class EventPublisher(Protocol):
    """Produces one event to ``learning-events``."""

    async def publish(self, student_id: str, event: dict[str, Any]) -> None:
        """Return after the broker acknowledged the event; raise when it could not."""
        ...

    def ready(self) -> bool:
        """True when the broker can be reached (may block up to ~1 s)."""
        ...


def _resolve(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():  # the request went away (cancelled)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class _Batch:
    """The delivery reports of one ``publish_batch``: its future is settled once, when
    every event was acknowledged or failed (reports arrive on the delivery thread)."""

    def __init__(self, future: asyncio.Future[None], size: int) -> None:
        self.future = future
        self.size = size
        self.left = size + 1  # a report per event, plus the end of the produce loop
        self.failed = 0
        self.first_error: str | None = None
        self.lock = threading.Lock()

    def on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self._count(1, 0, None)
        else:
            self._count(1, 1, f"delivery failed: {err}")

    def produce_loop_ended(self, unsent: int, error: str | None) -> None:
        """The last ``unsent`` events never reached the producer (``error`` says why)."""
        self._count(unsent + 1, unsent, error)

    def _count(self, done: int, failed: int, error: str | None) -> None:
        with self.lock:
            self.left -= done
            self.failed += failed
            self.first_error = self.first_error or error
            if self.left:
                return
        outcome = None
        if self.failed:
            outcome = PublishError(f"{self.failed} of {self.size} events: {self.first_error}")
        # RuntimeError: the loop is closed (shutdown), nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            self.future.get_loop().call_soon_threadsafe(_resolve, self.future, outcome)


class KafkaEventPublisher:
    """``EventPublisher`` on a confluent-kafka producer."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = TOPIC,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._producer = Producer({
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 2,
            "message.timeout.ms": 10000,
            "client.id": "eduknit-api",
            **(config or {}),
        }, logger=log)  # fmt: skip
        self._closed = threading.Event()
        self._ready_lock = threading.Lock()
        self._ready_at = 0.0
        self._ready = False
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            try:
                self._producer.poll(0.05)
            except Exception:  # a failing callback must not stop deliveries
                log.exception("Kafka delivery poll failed")

    async def publish(self, student_id: str, event: dict[str, Any]) -> None:
        """Produce ``event`` keyed by ``student_id`` and wait for the acknowledgement."""
        if self._closed.is_set():
            raise PublishError("publisher is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: Any, _msg: Any) -> None:
            error = PublishError(f"delivery failed: {err}") if err is not None else None
            # RuntimeError: the loop is closed (shutdown), nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, error)

        try:
            self._producer.produce(
                self.topic,
                value=orjson.dumps(event),
                key=student_id.encode(),
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            raise PublishError("producer queue is full") from exc
        except KafkaException as exc:
            raise PublishError(f"produce failed: {exc}") from exc
        await future

    async def publish_batch(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Produce every ``(student_id, event)`` and wait until the broker acknowledged all;
        ``PublishError`` when any was not. One future per batch, settled by the last delivery
        report: ``publish`` per event costs a future, a task and a loop wake-up each
        (BENCHMARKS.md, § HTTP ingest). The events produced before a failure still go."""
        if self._closed.is_set():
            raise PublishError("publisher is closed")
        loop = asyncio.get_running_loop()
        batch = _Batch(loop.create_future(), len(items))
        for produced, (student_id, event) in enumerate(items):
            try:
                self._producer.produce(
                    self.topic, value=orjson.dumps(event), key=student_id.encode(),
                    on_delivery=batch.on_delivery,
                )  # fmt: skip
            except (BufferError, KafkaException) as exc:
                batch.produce_loop_ended(len(items) - produced, f"produce failed: {exc!r}")
                break
        else:
            batch.produce_loop_ended(0, None)
        await batch.future

    def ready(self) -> bool:
        """True when the broker answered a metadata request within 1 s (cached 1.5 s)."""
        with self._ready_lock:
            now = time.monotonic()
            if now - self._ready_at < READY_CACHE_SECONDS:
                return self._ready
            try:
                self._producer.list_topics(timeout=1)
                self._ready = True
            except Exception as exc:  # any failure means "not reachable now"
                log.warning("Kafka not ready: %s", exc)
                self._ready = False
            self._ready_at = time.monotonic()
            return self._ready

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` s) and stop the delivery thread."""
        if self._closed.is_set():
            return
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("%d events were not delivered before shutdown", remaining)
        self._closed.set()
        self._poller.join(timeout=1)
