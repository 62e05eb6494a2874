"""POST /api/events and /xapi/statements over real HTTP, into a real broker (docs/ingest.md).

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
import copy
import datetime as dt
import http.client
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from clickhouse_connect.driver.client import Client

from api.ingest import OFF_THE_LOOP_AT
from infra.broker import EmbeddedBroker, free_port
from infra.settings import Settings
from infra.tokens import make_token
from infra.topics import ensure_topics
from testkit.xapi_fixtures import statements
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
    again = post(api, "/api/events", bearer(), json=good)  # re-sending is safe
    assert again.json() == {"accepted": 2, "rejected": []}


def test_events_a_big_batch_is_checked_off_the_loop_and_produced(
    api: str, kafka: KafkaLog, student: str
) -> None:
    assert OFF_THE_LOOP_AT < 1000  # this batch takes the thread-pool path
    batch = [event(student, lessonId=f"l{i}") for i in range(1000)]
    batch[999]["timeSpent"] = -1
    answer = post(api, "/api/events", bearer(), json=batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 999
    assert [(r["index"], r["field"]) for r in answer.json()["rejected"]] == [(999, "timeSpent")]
    assert kafka.for_student(student, 999) == batch[:999]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "nests deeper"),  # nested too deeply (api.limits)
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


# ---------------------------------------------------------- /xapi/statements
def _as(student: str, statement: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A fixture statement of ``student`` with a new id (and changes)."""
    copied = copy.deepcopy(statement)
    copied["actor"]["account"]["name"] = student
    copied["id"] = str(uuid.uuid4())
    copied.update(changes)
    return copied


def test_xapi_statements_are_produced_and_their_ids_answered_in_order(
    api: str, kafka: KafkaLog, student: str
) -> None:
    sent = [_as(student, s) for s in statements("problem_check(server).list_answers.json")]
    sent.append(_as(student, statements("play_video.json")[0]))
    no_id = _as(student, statements("edx.course.enrollment.activated.json")[0])
    del no_id["id"]
    sent.append(no_id)
    answer = post(api, "/xapi/statements", basic(), json=sent)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"
    ids = answer.json()
    assert ids[:-1] == [s["id"] for s in sent[:-1]] and uuid.UUID(ids[-1])
    produced = kafka.for_student(student, 2)
    assert [(e["eventId"], e["type"]) for e in produced] == [
        (sent[0]["id"], "quiz_completed"),
        (ids[-1], "enrolled"),
    ]
    assert produced[0]["score"] == 50.0 and produced[0]["courseId"] == (
        "course-v1:edX+DemoX+Demo_Course"
    )
    one = post(api, "/xapi/statements", bearer(), json=sent[0])  # one statement, bearer auth
    assert one.status_code == 200 and one.json() == [sent[0]["id"]]


def test_xapi_a_big_batch_is_checked_off_the_loop(api: str, kafka: KafkaLog, student: str) -> None:
    base = statements("problem_check(server).json")[0]
    batch = [_as(student, base) for _ in range(600)]
    batch[599]["result"]["score"]["scaled"] = "high"
    answer = post(api, "/xapi/statements", basic(), json=batch)
    assert answer.status_code == 400  # raised on the thread pool, answered the same
    assert answer.json()["detail"][0] | {"message": ""} == {
        "index": 599,
        "field": "result.score.scaled",
        "message": "",
    }
    batch[599]["result"]["score"]["scaled"] = 1
    answer = post(api, "/xapi/statements", basic(), json=batch)
    assert answer.status_code == 200 and answer.json() == [s["id"] for s in batch]
    assert [e["eventId"] for e in kafka.for_student(student, 600)] == answer.json()


def test_xapi_scores_outside_0_1_are_clamped(api: str, kafka: KafkaLog, student: str) -> None:
    base = statements("problem_check(server).json")[0]
    high, low = _as(student, base), _as(student, base)
    high["result"]["score"]["scaled"] = 1.25
    low["result"]["score"]["scaled"] = -0.5
    assert post(api, "/xapi/statements", basic(), json=[high, low]).status_code == 200
    assert [e["score"] for e in kafka.for_student(student, 2)] == [100.0, 0.0]


def test_xapi_put_with_statement_id(api: str, kafka: KafkaLog, student: str) -> None:
    statement = _as(student, statements("edx.course.enrollment.activated.json")[0])
    url = f"{api}/xapi/statements"
    answer = httpx.put(url, params={"statementId": statement["id"]}, json=statement,
                       headers=basic(), timeout=30)  # fmt: skip
    assert answer.status_code == 204 and answer.headers["X-Experience-API-Version"] == "1.0.3"
    other = httpx.put(url, params={"statementId": str(uuid.uuid4())}, json=statement,
                      headers=basic(), timeout=30)  # fmt: skip
    assert other.status_code == 400 and other.json()["detail"][0]["field"] == "id"
    missing = httpx.put(url, json=statement, headers=basic(), timeout=30)
    assert missing.status_code == 400 and missing.json()["detail"][0]["field"] == "statementId"
    assert [e["eventId"] for e in kafka.for_student(student, 1)] == [statement["id"]]


def _without(path: str) -> Any:
    def change(statement: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = statement
        for part in parents:
            target = target[part]
        del target[last]

    return change


def _setting(path: str, value: Any) -> Any:
    def change(statement: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = statement
        for part in parents:
            target = target[part]
        target[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_without("actor"), "actor"),
        (_without("verb"), "verb"),
        (_without("object"), "object"),
        (_without("verb.id"), "verb.id"),
        (_setting("actor", "learner"), "actor"),
        (_setting("verb", "evaluated"), "verb"),
        (_setting("object", []), "object"),
        (_setting("result.score.scaled", "0.5"), "result.score.scaled"),
        (_setting("result.score", 0.5), "result.score"),
        (_setting("timestamp", "last tuesday"), "timestamp"),
        (_setting("id", 12), "id"),
        (_setting("actor.account", {"homePage": "http://lms"}), "actor"),  # no learner
        (_without("context"), "context.contextActivities"),  # no course (the id has none)
        (_setting("id", "x" * 129), "id"),  # over the 128 characters of an id (the worker's rule)
        (_setting("object.id", "http://lms.example/" + "q" * 110), "object.id"),  # quizId too
    ],
)
def test_xapi_bad_statement_is_400_naming_index_and_field(
    api: str, kafka: KafkaLog, student: str, change: Any, field: str
) -> None:
    good = _as(student, statements("problem_check(server).json")[0])
    bad = _as(student, statements("problem_check(server).json")[0])
    if field == "context.contextActivities":
        bad["object"]["id"] = "https://lms.example/quiz/1"
    change(bad)
    answer = post(api, "/xapi/statements", basic(), json=[good, bad])
    assert answer.status_code == 400, answer.text
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"
    (problem,) = answer.json()["detail"]
    assert (problem["index"], problem["field"]) == (1, field) and problem["message"]
    only_marker_arrives(api, kafka, student)  # nothing of that request (not even `good`)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"", "body"),
        (b'"a statement"', "body"),
        (b"42", "body"),
        (b"[1, 2]", "statement"),
    ],
)
def test_xapi_body_that_is_no_statement_is_400(api: str, content: bytes, field: str) -> None:
    answer = post(api, "/xapi/statements", basic(), content=content)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"][0]["field"] == field


def test_xapi_body_that_is_no_json_is_422_like_every_route(api: str) -> None:
    """Malformed JSON is refused by the body limits in front of every route (422 with
    the project's validation body), before any xAPI rule; the version header is there."""
    answer = post(api, "/xapi/statements", basic(), content=b"<statement/>")
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["field"] == "body"
    assert answer.headers["X-Experience-API-Version"] == "1.0.3"


def test_xapi_version_and_size_limits(api: str) -> None:
    statement = statements("play_video.json")[0]
    old = post(api, "/xapi/statements", {**basic(), "X-Experience-API-Version": "0.95"},
               json=statement)  # fmt: skip
    assert old.status_code == 400
    assert old.json()["detail"][0]["field"] == "X-Experience-API-Version"
    no_version = {"Authorization": basic()["Authorization"]}
    assert post(api, "/xapi/statements", no_version, json=statement).status_code == 200
    big = orjson.dumps([statement] * (LIMIT // len(orjson.dumps(statement)) + 10))
    too_big = post(api, "/xapi/statements", basic(), content=big)
    assert too_big.status_code == 413 and too_big.headers["X-Experience-API-Version"] == "1.0.3"
    many = post(api, "/xapi/statements", basic(), json=[statement] * 1001)
    assert many.status_code == 400 and "1,000" in many.json()["detail"][0]["message"]


def test_xapi_auth(api: str, kafka: KafkaLog, student: str) -> None:
    statement = _as(student, statements("edx.course.enrollment.activated.json")[0])
    for headers in (
        VERSION,
        basic(secret="wrong-secret"),
        basic(key="other-lms"),
        basic(secret=""),
        {"Authorization": "Basic not-base64!", **VERSION},
        {"Authorization": f"Token {LRS_SECRET}", **VERSION},
        {"Authorization": "Bearer not.a.jwt", **VERSION},
    ):
        answer = post(api, "/xapi/statements", headers, json=statement)
        assert answer.status_code == 401, headers
        assert "Basic" in answer.headers["WWW-Authenticate"]
    for role in ("student", "admin"):
        answer = post(api, "/xapi/statements", bearer(role, student), json=statement)
        assert answer.status_code == 403
    only_marker_arrives(api, kafka, student)


def test_requests_shaped_as_open_edx_sends_them(api: str, kafka: KafkaLog, student: str) -> None:
    """What Open edX's LRS client (tincan's ``RemoteLRS``) sends, byte for byte in shape:
    ``http.client``, the route URL + ``statements`` and a ``?`` even without a query,
    ASCII Basic credentials, the version header; a batch by POST, one statement by PUT."""
    batch = [_as(student, s) for s in statements("problem_check(server).list_answers.json")]
    (single,) = [_as(student, statements("complete_video.json")[0])]
    host, port = api.removeprefix("http://").split(":")
    headers = {**basic(), "Content-Type": "application/json"}

    def send(method: str, path: str, body: Any) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request(method, path, body=orjson.dumps(body), headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    status, answer = send("POST", "/xapi/statements?", batch)
    assert status == 200 and orjson.loads(answer) == [s["id"] for s in batch]
    query = urllib.parse.urlencode({"statementId": single["id"]})
    assert send("PUT", f"/xapi/statements?{query}", single) == (204, b"")
    produced = kafka.for_student(student, 2)
    assert [e["eventId"] for e in produced] == [batch[0]["id"], single["id"]]


def test_unknown_verbs_are_counted_by_verb(api: str, student: str) -> None:
    statement = _as(student, statements("play_video.json")[0])
    statement["verb"]["id"] = verb = f"https://example.org/verbs/knitted-{student}"
    assert post(api, "/xapi/statements", basic(), json=[statement, statement]).status_code == 200
    metrics = httpx.get(f"{api}/metrics", timeout=10).text
    assert f'eduknit_api_xapi_statements_total{{outcome="ignored",verb="{verb}"}} 2.0' in metrics


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
        statement = _as(student, statements("edx.course.enrollment.activated.json")[0])
        xapi = post(server.base_url, "/xapi/statements", basic(), json=statement)
        assert xapi.status_code == 503 and xapi.headers["X-Experience-API-Version"] == "1.0.3"
        ignored_only = _as(student, statements("play_video.json")[0])  # nothing to produce
        assert post(server.base_url, "/xapi/statements", basic(), json=ignored_only).json() == [
            ignored_only["id"]
        ]
