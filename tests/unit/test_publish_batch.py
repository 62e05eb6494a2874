"""``KafkaEventPublisher.publish_batch`` without a broker: one wait per batch, failures as
``PublishError``. Acknowledged batches are covered over a real broker by
``tests/integration/test_ingest_http.py`` (every accepted event read back from Kafka)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from api.publisher import KafkaEventPublisher, PublishError


def _nowhere() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _items(n: int) -> list[tuple[str, dict[str, str]]]:
    return [(f"s{i}", {"eventId": f"e{i}", "studentId": f"s{i}"}) for i in range(n)]


async def test_undelivered_batch_raises_once_every_report_is_in() -> None:
    publisher = KafkaEventPublisher(_nowhere(), config={"message.timeout.ms": 300, "log_level": 0})
    started = time.monotonic()
    with pytest.raises(PublishError, match=r"50 of 50 events: delivery failed"):
        await publisher.publish_batch(_items(50))
    assert time.monotonic() - started < 5
    publisher.close(timeout=1)


async def test_a_full_queue_fails_the_batch_and_counts_the_unsent() -> None:
    publisher = KafkaEventPublisher(
        _nowhere(),
        config={"message.timeout.ms": 300, "log_level": 0, "queue.buffering.max.messages": 5},
    )
    with pytest.raises(PublishError, match=r"10 of 10 events: produce failed") as caught:
        await publisher.publish_batch(_items(10))
    assert "BufferError" in str(caught.value)
    publisher.close(timeout=1)


async def test_empty_batch_and_closed_publisher() -> None:
    publisher = KafkaEventPublisher(_nowhere(), config={"log_level": 0})
    await asyncio.wait_for(publisher.publish_batch([]), timeout=1)
    publisher.close(timeout=1)
    with pytest.raises(PublishError, match="closed"):
        await publisher.publish_batch(_items(1))
