"""The Kafka topics of docs/api.md § Learning events and their creation (idempotent).

``ensure_topics`` creates the topics that are missing, with the settings they
need (the catalog is compacted); topics that exist are left as they are.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import catalog, dead_letter, events

log = logging.getLogger(__name__)

WEEK_MS = str(7 * 24 * 3600 * 1000)


def topic_specs(partitions: int) -> list[NewTopic]:
    """The topics of the pipeline with their configuration."""
    return [
        NewTopic(events.TOPIC, partitions, 1, config={"retention.ms": WEEK_MS}),
        NewTopic(dead_letter.TOPIC, partitions, 1, config={"retention.ms": WEEK_MS}),
        NewTopic(
            catalog.TOPIC, partitions, 1,
            config={"cleanup.policy": "compact", "retention.ms": "-1"},
        ),
    ]  # fmt: skip


def ensure_topics(bootstrap_servers: str, partitions: int, timeout: float = 30.0) -> list[str]:
    """Create the missing topics; return the names created now."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 5000})
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap_servers} did not answer: {exc}") from exc
            time.sleep(0.5)
    wanted = [spec for spec in topic_specs(partitions) if spec.topic not in existing]
    created: list[str] = []
    if not wanted:
        return created
    for name, future in admin.create_topics(wanted, operation_timeout=10).items():
        try:
            future.result(timeout=15)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    log.info("created topics %s", created)
    return created
