"""POST /api/events and /xapi/statements over real HTTP, into a real broker (SPEC §9).

The app (``create_app``) is served by uvicorn with a real ``KafkaEventPublisher``
on a Tansu broker of this module and the session's embedded ClickHouse; what
reached ``learning-events`` is read back from the broker. The body limit is
lowered to 2 MiB here (``EDUKNIT_MAX_BATCH_BODY_BYTES``), so a 2 MB+ body is
refused; the default 4 MiB is tested with a 5 MB body in ``test_xapi_pipeline``.
Every bad input gets its 4xx with the field named, and nothing of a refused
request is produced: after it, a marker event of the same student (same key,
same partition) is the only thing that arrives.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from infra.broker import EmbeddedBroker, free_port
from infra.settings import Settings
from infra.tokens import make_token
from infra.topics import ensure_topics
from tests.integration.app_server import AppServer, KafkaLog

pytestmark = pytest.mark.integration

SECRET = "ingest-http-secret-0123456789abcdef0123"
KEY, LRS_SECRET = "openedx-lms", "lrs-secret-0123456789"
LIMIT = 2 * 1024 * 1024
VERSION = {"X-Experience-API-Version": "1.0.3"}


def bearer(role: str = "service", sub: str = "svc") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(SECRET, sub, role=role)}"}


def basic(key: str = KEY, secret: str = LRS_SECRET) -> dict[str, str]:
    pair = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}", **VERSION}


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        ensure_topics(running.bootstrap_servers, partitions=4)
        yield running


@pytest.fixture(scope="module")
def api(broker: EmbeddedBroker, ch_client: Client) -> Iterator[str]:
    settings = Settings(  # type: ignore[call-arg]
        EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_XAPI_KEY=KEY, EDUKNIT_XAPI_SECRET=LRS_SECRET,
        EDUKNIT_MAX_BATCH_BODY_BYTES=LIMIT, EDUKNIT_DASHBOARD_CACHE_STUDENTS=0,
    )  # fmt: skip
    with AppServer(settings, ch_client, broker.bootstrap_servers) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def kafka(broker: EmbeddedBroker) -> Iterator[KafkaLog]:
    with KafkaLog(broker.bootstrap_servers) as log:
        yield log


@pytest.fixture
def student() -> str:
    return f"ingest-{uuid.uuid4().hex[:10]}"


def event(student: str, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": f"{student}-{uuid.uuid4().hex[:8]}", "type": "lesson_progress",
        "studentId": student, "courseId": "c-ingest", "lessonId": "l1", "completed": True,
        "timeSpent": 5, "occurredAt": dt.datetime.now(dt.UTC).isoformat(), **fields,
    }  # fmt: skip


def post(api: str, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{api}{path}", headers=headers, timeout=30, **kwargs)


def only_marker_arrives(api: str, kafka: KafkaLog, student: str) -> None:
    """After a refused request: a marker of the same student is all that reaches Kafka."""
    marker = event(student, eventId=f"{student}-marker")
    answer = post(api, "/api/events", bearer(), json=[marker])
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    assert [e["eventId"] for e in kafka.for_student(student, 1)] == [marker["eventId"]]


# ------------------------------------------------------------- /api/events
def test_events_valid_ones_are_produced_invalid_ones_listed(
    api: str, kafka: KafkaLog, student: str
) -> None:
    good = [event(student), event(student, type="enrolled", courseId="c-2")]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    batch: list[Any] = [
        good[0],
        event(student, type="quiz_completed", score=50, eventId="x1"),  # no quizId
        {**event(student), "eventId": ""},
        "an event",
        event(student, occurredAt=future, eventId="x2"),
        event(student, timeSpent="ten", eventId="x3"),
        {**event(student), "studentId": None, "eventId": "x4"},
        good[1],
        event(student, score=101, type="quiz_completed", quizId="q", eventId="x5"),
    ]
    answer = post(api, "/api/events", bearer(), json=batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["eventId"], r["field"]) for r in body["rejected"]] == [
        (1, "x1", "quizId"),
        (2, "", "eventId"),
        (3, None, "event"),
        (4, "x2", "occurredAt"),
        (5, "x3", "timeSpent"),
        (6, "x4", "studentId"),
        (8, "x5", "score"),
    ]
    assert all(r["message"] for r in body["rejected"])
    assert kafka.for_student(student, 2) == good  # keyed by studentId, as sent
    again = post(api, "/api/events", bearer(), json=good)  # re-sending is safe (§2)
    assert again.json() == {"accepted": 2, "rejected": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "not valid JSON"),  # nested too deeply
        (b'{"eventId": "e1"}', "JSON array of 1 to 1,000"),
        (b"[]", "JSON array of 1 to 1,000"),
        (orjson.dumps([{"eventId": str(i)} for i in range(1001)]), "JSON array of 1 to 1,000"),
    ],
)
def test_events_body_that_is_no_array_of_events_is_422(
    api: str, content: bytes, message: str
) -> None:
    answer = post(api, "/api/events", bearer(), content=content)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["field"] == "body" and message in problem["message"]


def test_events_need_a_service_token(api: str, kafka: KafkaLog, student: str) -> None:
    batch = [event(student)]
    assert post(api, "/api/events", {}, json=batch).status_code == 401
    assert post(api, "/api/events", bearer("student", student), json=batch).status_code == 403
    assert post(api, "/api/events", bearer("admin", "boss"), json=batch).status_code == 403
    assert post(api, "/api/events", basic(), json=batch).status_code == 401
    only_marker_arrives(api, kafka, student)


def test_events_over_the_body_limit_are_413(api: str, kafka: KafkaLog, student: str) -> None:
    padding = "x" * 1000
    batch = [event(student, moduleId=padding[:100], note=padding) for _ in range(2200)]
    content = orjson.dumps(batch)
    assert LIMIT < len(content) < 3 * 1024 * 1024  # "2 MB+" over the lowered 2 MiB limit
    answer = post(api, "/api/events", bearer(), content=content)
    assert answer.status_code == 413
    assert str(LIMIT) in answer.json()["detail"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    assert post(api, "/api/events", bearer(), content=chunked()).status_code == 413
    only_marker_arrives(api, kafka, student)


# ----------------------------------------------------------- broker down
def test_503_when_kafka_does_not_acknowledge(ch_client: Client, student: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_XAPI_KEY=KEY, EDUKNIT_XAPI_SECRET=LRS_SECRET,
        EDUKNIT_DASHBOARD_CACHE_STUDENTS=0,
    )  # fmt: skip
    nobody = f"127.0.0.1:{free_port()}"  # no broker listens there
    with AppServer(settings, ch_client, nobody, **{"message.timeout.ms": 1500}) as server:
        events = post(server.base_url, "/api/events", bearer(), json=[event(student)])
        assert events.status_code == 503 and events.headers["Retry-After"] == "1"
