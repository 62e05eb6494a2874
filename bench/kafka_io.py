"""Broker side of the benchmarks: start an embedded broker, create topics, produce fast.

``produce_all`` sends pre-built (key, value) messages with a confluent-kafka
producer tuned for throughput (~300k msg/s on this machine), so
the broker holds the whole workload before a consumer starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from infra.broker import EmbeddedBroker
from infra.topics import ensure_topics
from schemas import catalog as catalog_schema
from schemas import events as events_schema

PARTITIONS = 8  # the project's default EDUKNIT_PARTITIONS


def start_broker(log_path: Path, partitions: int = PARTITIONS) -> EmbeddedBroker:
    """A fresh memory-only broker on a free loopback port, with the pipeline's topics."""
    broker = EmbeddedBroker(0, log_path=log_path).start()
    ensure_topics(broker.bootstrap_servers, partitions)
    return broker


def producer(bootstrap: str, **overrides: Any) -> Producer:
    config = {
        "bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000, "compression.type": "none", **overrides,
    }  # fmt: skip
    return Producer(config)


def produce_catalog(bootstrap: str, catalog: list[dict[str, Any]]) -> None:
    p = producer(bootstrap)
    for entry in catalog:
        p.produce(catalog_schema.TOPIC, key=entry["courseId"].encode(), value=orjson.dumps(entry))
    if p.flush(30):
        raise RuntimeError("catalog not delivered")


def produce_all(
    bootstrap: str, messages: Iterable[tuple[bytes, bytes]], topic: str = events_schema.TOPIC
) -> tuple[int, float]:
    """Produce every message; return (count, seconds)."""
    p = producer(bootstrap)
    started = time.perf_counter()
    count = 0
    for key, value in messages:
        while True:
            try:
                p.produce(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
        count += 1
        if count % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} messages not delivered")
    return count, time.perf_counter() - started
