"""``KafkaEventPublisher`` without a broker: failures surface as ``PublishError``, fast.

The path through a real broker is covered by the integration tests.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from api.publisher import KafkaEventPublisher, PublishError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def publisher() -> KafkaEventPublisher:
    nowhere = f"127.0.0.1:{_closed_port()}"
    return KafkaEventPublisher(nowhere, config={"message.timeout.ms": 300, "log_level": 0})


async def test_publish_to_no_broker_raises_publish_error(publisher: KafkaEventPublisher) -> None:
    started = time.monotonic()
    ticker_ran = 0

    async def ticker() -> None:  # the event loop must stay free while we wait
        nonlocal ticker_ran
        while True:
            await asyncio.sleep(0.01)
            ticker_ran += 1

    task = asyncio.create_task(ticker())
    with pytest.raises(PublishError, match="delivery failed"):
        await publisher.publish("s1", {"eventId": "e1", "studentId": "s1"})
    task.cancel()
    assert time.monotonic() - started < 5
    assert ticker_ran >= 5
    publisher.close(timeout=1)


def test_ready_is_false_and_cached(publisher: KafkaEventPublisher) -> None:
    assert publisher.ready() is False
    started = time.monotonic()
    assert publisher.ready() is False  # answered from the cache, no second 1 s wait
    assert time.monotonic() - started < 0.5
    publisher.close(timeout=1)


async def test_closed_publisher_refuses(publisher: KafkaEventPublisher) -> None:
    publisher.close(timeout=1)
    with pytest.raises(PublishError, match="closed"):
        await publisher.publish("s1", {"eventId": "e1"})
