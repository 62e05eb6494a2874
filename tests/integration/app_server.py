"""The real API served over HTTP from a thread of the test process, producing to a real broker.

``AppServer`` builds the app with ``api.main.create_app`` on the session's
embedded ClickHouse and a real ``KafkaEventPublisher``, and serves it with
uvicorn on a free loopback port and the HTTP parser ``make run`` uses. The
``KafkaLog`` reads back what was produced to ``learning-events`` (all
partitions from the start, no consumer group), so a test can check what the
broker acknowledged. Use both as context managers: they stop what they start.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import orjson
import uvicorn
from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from api.main import create_app
from api.publisher import KafkaEventPublisher
from eduknit.cli import API_HTTP
from infra.broker import free_port
from infra.settings import Settings
from schemas.events import TOPIC


class AppServer:
    """Uvicorn serving the app in a thread; ``base_url`` once started."""

    def __init__(self, settings: Settings, client: Client, bootstrap: str, **producer: Any) -> None:
        self.port = free_port()
        self.publisher = KafkaEventPublisher(bootstrap, config=producer or None)
        app = create_app(settings, client, self.publisher)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            lifespan="on", http=API_HTTP,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test API did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.publisher.close(timeout=2)


class KafkaLog:
    """Everything in ``learning-events``, read from the start of every partition."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "ingest-test-reader",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
        })  # fmt: skip
        partitions = self.consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        self.consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in partitions])
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def for_student(self, student: str, expect: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The events keyed by ``student``, once ``expect`` of them arrived (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [event for key, event in self.seen if key == student]
            if len(mine) >= expect or time.monotonic() > deadline:
                return mine
            message = self.consumer.poll(0.2)
            if message is not None and not message.error():
                key = (message.key() or b"").decode()
                self.seen.append((key, orjson.loads(message.value())))

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
