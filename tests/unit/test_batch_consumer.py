"""How ``BatchingApp`` hands fetches to the worker: gathering, tracking, acking, revoking.

The consumer's fetch loop itself runs against the real broker in every
integration and fault test (the worker consumes through it); these check the
queue side without a broker.
"""

from __future__ import annotations

import asyncio

from faust.types import TP, Message

from streams.batch_consumer import BatchingApp


def fetch(partition: int, first: int, count: int) -> list[Message]:
    tp = TP("learning-events", partition)
    return [
        Message("learning-events", partition, first + i, 0.0, 0, None, b"k", b"v", None, tp=tp)
        for i in range(count)
    ]


def make_app() -> tuple[BatchingApp, object]:
    app = BatchingApp("test-batching", broker="kafka://127.0.0.1:1", store="memory://")
    app.finalize()
    queue = app.batch_queue(app.topic("learning-events"), max_batches=4)
    app.flow_control.resume()
    return app, queue


def test_take_gathers_the_waiting_fetches_up_to_the_limit_and_tracks_them() -> None:
    async def scenario() -> None:
        app, queue = make_app()
        fetches = [fetch(0, 0, 3), fetch(1, 0, 3), fetch(0, 3, 3)]
        for batch in fetches:
            await queue.put(batch)
        taken = await app.take(queue, max_records=5, within=1.0)
        # Two fetches reach the limit (6 >= 5); the third waits for the next take.
        assert taken == fetches[0] + fetches[1]
        assert set(app.consumer._unacked_messages) == set(taken)
        assert await app.take(queue, max_records=5, within=0.01) == fetches[2]
        app.ack(taken)
        assert all(message.acked for message in taken)
        assert not any(message.acked for message in fetches[2])

    asyncio.run(scenario())


def test_take_waits_within_the_window_for_more_fetches() -> None:
    async def scenario() -> None:
        app, queue = make_app()
        first, late, too_late = fetch(0, 0, 2), fetch(0, 2, 2), fetch(0, 4, 2)
        await queue.put(first)

        async def produce() -> None:
            await asyncio.sleep(0.05)
            await queue.put(late)
            await asyncio.sleep(0.5)
            await queue.put(too_late)

        producer = asyncio.ensure_future(produce())
        loop = asyncio.get_running_loop()
        started = loop.time()
        taken = await app.take(queue, max_records=100, within=0.2)
        assert taken == first + late
        assert 0.15 <= loop.time() - started < 0.5  # waited out the window, not longer
        await producer
        assert await app.take(queue, max_records=100, within=0.0) == too_late

    asyncio.run(scenario())


def test_revocation_drops_fetches_not_taken() -> None:
    async def scenario() -> None:
        app, queue = make_app()
        await queue.put(fetch(0, 0, 2))
        app.flow_control.suspend()
        app.flow_control.clear()  # what Faust does when partitions are revoked
        assert queue.empty()

    asyncio.run(scenario())
