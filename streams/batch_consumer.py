"""Faust's Kafka consumer handing each fetch of the events topic to the worker whole.

Stock Faust delivers fetched records one at a time: its fetcher awaits
``wait_first(callback(message), suspend_flow.wait())`` per record (four futures
and an ``asyncio.wait`` each), the conductor wraps the record in an ``Event`` and
puts it on the agent's queue, and the stream takes it off again with its sensors.
That is ~60 µs of CPU per record on the event loop, which this worker's batches do
not need (bare counters on one broker, 300k messages: stock 14.8k records/s;
without the per-record ``wait_first`` 24k; whole fetches handed over 180k).

``BatchingApp`` is a ``faust.App`` whose consumer does the stock work for every
topic except those registered with ``batch_queue``: their records of one fetch go
onto a flow-controlled queue as one list. Everything else stays Faust's: the
group membership and rebalances, offsets (a record is committed once the worker
``ack``s it), the seek to the committed offsets after a rebalance, the flow
control that empties the queue when partitions are revoked (those records are
fetched again), and ``wait_empty`` at revocation and shutdown for the records the
worker took (``take`` registers them as unacknowledged, as a stream does).

Written against faust-streaming 0.15.3 (pinned in constraints.txt): the override
is ``Consumer._drain_messages``, a private method; tests/integration exercise it
on the real broker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message
from mode import Service
from mode.utils.queues import FlowControlQueue

# A yield to the event loop every this many records while a fetch is sorted, as
# the stock fetcher does every 100 (sorting one record is ~1 µs here).
YIELD_EVERY = 1000

Batch = list[Message]


class BatchingConsumer(aiokafka_driver.Consumer):
    """The aiokafka consumer; records of batch topics go to their queue per fetch."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by Faust
        """The stock fetch loop (faust/transport/consumer.py), batch topics set apart."""
        queues: dict[str, FlowControlQueue[Batch]] = self.app.batch_queues  # type: ignore[attr-defined]
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                batches: dict[str, Batch] = {}
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    read = get_read_offset(tp)
                    if read is not None and offset < read:
                        continue  # fetched again after a seek: already delivered
                    if read and offset - read > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, read + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in queues:
                        batches.setdefault(message.topic, []).append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
                for topic, batch in batches.items():
                    # A rebalance (suspend_flow) drops the batch: it is fetched again
                    # from the committed offsets, like the stock stream buffers.
                    await self.wait_first(queues[topic].put(batch), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class BatchingTransport(aiokafka_driver.Transport):
    """Faust's aiokafka transport with the batching consumer."""

    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A Faust app whose consumer can hand whole fetches of a topic to one queue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_queues: dict[str, FlowControlQueue[Batch]] = {}

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    def batch_queue(self, topic: faust.TopicT, max_batches: int) -> FlowControlQueue[Batch]:
        """Subscribe to ``topic``; its records arrive on the returned queue, a list per fetch.

        At most ``max_batches`` fetches wait on the queue (the consumer waits when it
        is full); revoking partitions empties it.
        """
        queue: FlowControlQueue[Batch] = FlowControlQueue(
            maxsize=max_batches, flow_control=self.flow_control, clear_on_resume=True
        )
        self.batch_queues[topic.get_topic_name()] = queue
        self.topics.add(topic)
        return queue

    async def take(self, queue: FlowControlQueue[Batch], max_records: int, within: float) -> Batch:
        """The next fetches from ``queue``: wait for one, then gather more for up to
        ``within`` seconds or until ``max_records`` (exceeded by at most one fetch).

        The records are registered with the consumer as taken and not yet
        acknowledged, as a Faust stream does: a revocation or shutdown waits for
        them (``wait_empty``) until the caller ``ack``s them.
        """
        batch = list(await queue.get())
        deadline = time.monotonic() + within
        while len(batch) < max_records:
            if not queue.empty():
                batch += queue.get_nowait()
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch += await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
        self.consumer._unacked_messages.update(batch)  # type: ignore[attr-defined]
        return batch

    def ack(self, batch: Batch) -> None:
        """Acknowledge every record of ``batch``: their offsets may be committed."""
        ack = self.consumer.ack
        for message in batch:
            ack(message)


def shorten_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's consumer ask the broker to answer a fetch within ``max_wait_ms``.

    faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumer, and
    Tansu holds an empty fetch that long even when new records arrive meanwhile:
    produce-to-consume took p50 0.38 s / p99 0.75 s with it, 0.02 / 0.06 s with
    100 ms (bench, plain aiokafka). Faust creates the consumer through the
    ``aiokafka`` module at call time, so a subclass put there takes effect.
    """
    import aiokafka

    original = getattr(aiokafka.AIOKafkaConsumer, "_eduknit_original", aiokafka.AIOKafkaConsumer)

    class LowLatencyConsumer(original):  # type: ignore[misc, valid-type]
        _eduknit_original = original

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = max_wait_ms
            super().__init__(*args, **kwargs)

    aiokafka.AIOKafkaConsumer = LowLatencyConsumer  # type: ignore[misc]
