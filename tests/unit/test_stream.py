"""``GET /api/dashboard/stream`` on the real app, served by uvicorn on loopback.

The app runs as in production (``api.serving.ApiServer`` in a thread, its
lifespan starting the change feed) on the session's embedded ClickHouse; "the
worker" writes dashboard rows the way it does (``streams.rows.dashboard_row``
of a ``StudentState``). Streams are read with httpx as a browser would, one
reader task per stream collecting events into a queue. The feed polls every
50 ms and streams send ``: keep-alive`` after 0.3 s, so the tests are quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client

from api import stream_hub
from api.main import create_app
from api.models import RealtimeDashboard
from api.serving import ApiServer
from api.sse import KEEP_ALIVE, event_frame, last_event_id
from api.stream_hub import StreamClient, StreamHub
from eduknit.cli import API_HTTP
from infra.broker import free_port
from infra.settings import Settings
from streams import rows
from streams.student_state import StudentState
from tests.unit.test_api_http import NOW, SECRET, DownClient, auth, insert, token
from tests.unit.test_dashboard_cache import lesson

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
_versions = itertools.count(time.time_ns())
KEEPALIVE = 0.3
QUIET = 0.8  # seconds in which no event must come (the feed polls every 50 ms)


class Served:
    """An app served by ``ApiServer`` on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
            http=API_HTTP,
        )  # fmt: skip
        self.server = ApiServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the server did not stop (open streams?)"


def settings(**extra: Any) -> Settings:
    return Settings(
        EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_DASHBOARD_FEED_SECONDS=0.05,
        EDUKNIT_STREAM_KEEPALIVE_SECONDS=KEEPALIVE, **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(ch_client: Client) -> Iterator[Served]:
    app = create_app(settings(), ch_client, None, clock=lambda: NOW)  # type: ignore[arg-type]
    with Served(app) as running:
        yield running


class Worker:
    """Writes one student's dashboard rows as the worker does; returns each version."""

    def __init__(self, client: Client, student: str, course: str) -> None:
        self.client = client
        self.state = StudentState(student)
        self.course = course
        self.lessons = 0

    def complete_lesson(self) -> int:
        row, version = self.lesson_row()
        insert(self.client, "student_dashboard", [row])
        return version

    def lesson_row(self) -> tuple[list[Any], int]:
        """The dashboard row after one more completed lesson (not written), its version."""
        self.lessons += 1
        assert self.state.apply(lesson(self.state.student_id, self.course, self.lessons))
        version = next(_versions)
        return rows.dashboard_row(self.state, NOW, version), version


class Stream:
    """One open stream: its response, and a task parsing its events into a queue."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        event: dict[str, str] = {}
        async for line in self.response.aiter_lines():
            if not line:
                if event:
                    await self.events.put(event)
                event = {}
            elif line.startswith(":"):
                await self.events.put({"comment": line[1:].strip()})
            else:
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")

    async def next(self, timeout: float = 5.0, comments: bool = False) -> dict[str, str]:
        """The next event (comments skipped unless asked for)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            event = await asyncio.wait_for(self.events.get(), max(left, 0.001))
            if comments or "comment" not in event:
                return event

    async def quiet(self, seconds: float = QUIET) -> None:
        """Assert that no event comes within ``seconds`` (keep-alive comments allowed)."""
        with contextlib.suppress(TimeoutError):
            event = await self.next(seconds)
            raise AssertionError(f"unexpected event: {event}")


@contextlib.asynccontextmanager
async def open_stream(base: str, headers: dict[str, str], query: str = "") -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", f"/api/dashboard/stream{query}", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        try:
            yield stream
        finally:
            stream.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await stream.task


def realtime(base: str, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = httpx.get(f"{base}/api/dashboard/realtime{query}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def without_stamp(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "generatedAt"}


def open_streams(served: Served) -> float:
    """The ``eduknit_api_open_streams`` gauge in ``/metrics``."""
    for line in httpx.get(f"{served.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("eduknit_api_open_streams "):
            return float(line.split()[1])
    raise AssertionError("no eduknit_api_open_streams in /metrics")


def metric(served: Served, name: str) -> float:
    for line in httpx.get(f"{served.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


# ------------------------------------------------------------------- the wire
def test_event_frame_and_last_event_id() -> None:
    assert event_frame("dashboard", 7, b'{"a":1}') == b'event: dashboard\nid: 7\ndata: {"a":1}\n\n'
    assert [last_event_id(v) for v in (None, "12", " 12 ", "", "-1", "1.5", "x", "9" * 20)] == [
        None, 12, 12, None, None, None, None, None,
    ]  # fmt: skip


async def test_a_slow_client_holds_only_the_latest_state() -> None:
    hub = StreamHub(None, None, lambda: NOW)
    client = StreamClient(hub, "s", None)
    for version in range(1, 1001):
        client.offer(b"state %d" % version, version)
    assert await client.next(1.0) == b"state 1000"
    assert await client.next(0.05) == KEEP_ALIVE  # nothing older was queued
    client.close()
    assert await client.next(1.0) is None


def _dashboard(student: str) -> RealtimeDashboard:
    summary = {
        "enrolledCourses": 0,
        "averageProgress": 0.0,
        "currentStreak": 0,
        "longestStreak": 0,
        "totalPoints": 0,
        "level": 1,
        "pointsToNextLevel": 100,
    }
    return RealtimeDashboard.model_validate({
        "studentId": student, "generatedAt": "2026-11-26T03:00:00Z", "courses": [],
        "weeklyActivity": [], "summary": summary, "recentActivity": [], "notifications": [],
    })  # fmt: skip


async def test_ids_never_go_back_when_reads_race(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read for the open streams (old state, 5) ends while a new stream's first read
    (newer state, 7) is still running: the new stream gets 7 and nothing older after it."""
    versions = iter([(0.1, 5), (0.3, 7), (0.0, 7)])

    def read(_client: Any, zones: dict[str, Any], _now: Any, _cache: Any) -> Any:
        delay, version = next(versions)
        time.sleep(delay)
        return {student: (version, [(_dashboard(student), None) for _ in student_zones])
                for student, student_zones in zones.items()}  # fmt: skip

    monkeypatch.setattr(stream_hub, "realtime_answers", read)
    monkeypatch.setattr(stream_hub, "kept_realtime_view", lambda *_args: None)
    hub = StreamHub(None, None, lambda: NOW)
    hub.start(asyncio.get_running_loop())
    try:
        early = hub.join("s", None)
        early.sent_id = 3  # an open stream that was handed state 3
        late = hub.join("s", None)
        hub._announce([("s", 5)], time.monotonic())  # the feed saw 5: read for ``early``
        await asyncio.sleep(0.02)  # that read has started (the first one of ``versions``)
        first = await hub.first_frame(late, None)
        assert first is not None and b"\nid: 7\n" in first
        assert await late.next(0.2) == KEEP_ALIVE  # nothing queued behind state 7
        deadline = time.monotonic() + 2
        while early.sent_id != 7:  # the read behind the new stream's catches ``early`` up
            assert time.monotonic() < deadline, early.sent_id
            await asyncio.sleep(0.02)
    finally:
        hub.stop()


# -------------------------------------------------------------- through HTTP
async def test_first_event_is_the_realtime_body(
    served: Served, ch_client: Client, unique_id: str
) -> None:
    student = f"{unique_id}-s"
    version = Worker(ch_client, student, f"{unique_id}-c").complete_lesson()
    for query in ("", "?tz=Asia/Tokyo"):
        async with open_stream(served.url, auth(student), query) as stream:
            event = await stream.next()
        assert event["event"] == "dashboard" and int(event["id"]) == version
        body = orjson.loads(event["data"])
        assert without_stamp(body) == without_stamp(realtime(served.url, auth(student), query))
        assert body["summary"]["totalPoints"] == 10


async def test_a_change_is_one_event_and_others_changes_none(
    served: Served, ch_client: Client, unique_id: str
) -> None:
    mine = Worker(ch_client, f"{unique_id}-me", f"{unique_id}-c")
    other = Worker(ch_client, f"{unique_id}-other", f"{unique_id}-c")
    first = mine.complete_lesson()
    other.complete_lesson()
    async with open_stream(served.url, auth(f"{unique_id}-me")) as stream:
        assert int((await stream.next())["id"]) == first
        other.complete_lesson()
        other.complete_lesson()
        await stream.quiet()
        changed_at = time.monotonic()
        second = mine.complete_lesson()
        event = await stream.next(3.0)
        # the contract's second, doubled: the machine may be shared (bench.stream_push measures it)
        assert time.monotonic() - changed_at < 2.0, "much later than the contract's second"
        assert int(event["id"]) == second > first
        assert orjson.loads(event["data"])["summary"]["totalPoints"] == 20
        await stream.quiet()


async def test_keep_alive_comments(served: Served, unique_id: str) -> None:
    async with open_stream(served.url, auth(f"{unique_id}-quiet")) as stream:
        assert (await stream.next())["id"] == "0"  # no dashboard row yet: state 0
        started = time.monotonic()
        assert await stream.next(KEEPALIVE * 4, comments=True) == {"comment": "keep-alive"}
        assert time.monotonic() - started < KEEPALIVE * 3


async def test_last_event_id(served: Served, ch_client: Client, unique_id: str) -> None:
    student = f"{unique_id}-s"
    worker = Worker(ch_client, student, f"{unique_id}-c")
    old = worker.complete_lesson()
    current = worker.complete_lesson()
    resumed = {**auth(student), "Last-Event-ID": str(current)}
    async with open_stream(served.url, resumed) as stream:
        await stream.quiet()  # the current id: nothing until the next change
        newer = worker.complete_lesson()
        assert int((await stream.next(3.0))["id"]) == newer
    for last in (str(old), "not-a-number"):  # an old id, or none of ours: the state at once
        async with open_stream(served.url, {**auth(student), "Last-Event-ID": last}) as stream:
            event = await stream.next(1.0)
        assert int(event["id"]) == newer
        assert orjson.loads(event["data"])["summary"]["totalPoints"] == 30


async def test_one_read_per_change_for_all_of_a_students_streams(
    served: Served, ch_client: Client, unique_id: str
) -> None:
    student = f"{unique_id}-s"
    worker = Worker(ch_client, student, f"{unique_id}-c")
    worker.complete_lesson()
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(open_stream(served.url, auth(student)))
                   for _ in range(10)]  # fmt: skip
        for stream in streams:
            await stream.next()
        reads = metric(served, "eduknit_api_stream_reads_total")
        version = worker.complete_lesson()
        for stream in streams:
            assert int((await stream.next(3.0))["id"]) == version
        assert metric(served, "eduknit_api_stream_reads_total") - reads == 1


async def test_students_changed_together_are_read_together(
    served: Served, ch_client: Client, unique_id: str
) -> None:
    """The worker writes many students per flush; the hub reads them with one query."""
    workers = [Worker(ch_client, f"{unique_id}-{n}", f"{unique_id}-c") for n in range(5)]
    for worker in workers:
        worker.complete_lesson()
    async with contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(open_stream(served.url, auth(w.state.student_id)))
            for w in workers
        ]
        for stream in streams:
            await stream.next()
        reads = metric(served, "eduknit_api_stream_reads_total")
        written = [worker.lesson_row() for worker in workers]
        insert(ch_client, "student_dashboard", [row for row, _ in written])  # one flush
        for stream, (_, version) in zip(streams, written, strict=True):
            assert int((await stream.next(3.0))["id"]) == version
        assert metric(served, "eduknit_api_stream_reads_total") - reads == 1


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param({}, "", id="401-no-token"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, "", id="401-malformed"),
        pytest.param({"Authorization": f"Bearer {token('s1', exp=1)}"}, "", id="401-expired"),
        pytest.param(auth("s1"), "?studentId=s2", id="403-other-student"),
        pytest.param(auth("s1", "teacher"), "", id="403-unknown-role"),
        pytest.param(auth("s1"), "?tz=Mars/Olympus", id="422-tz"),
        pytest.param(auth("s1", "admin"), "?studentId=", id="422-student-empty"),
        pytest.param(auth("s1"), "?tz=", id="422-tz-empty"),
    ],
)
def test_errors_are_the_realtime_ones(served: Served, headers: dict[str, str], query: str) -> None:
    def answer(path: str) -> tuple[int, Any, str | None]:
        response = httpx.get(f"{served.url}/api/dashboard/{path}{query}", headers=headers)
        return response.status_code, response.json(), response.headers.get("www-authenticate")

    streamed = answer("stream")
    assert streamed == answer("realtime")
    assert streamed[0] in (401, 403, 422)
    assert open_streams(served) == 0


async def test_admin_streams_any_student(served: Served, ch_client: Client, unique_id: str) -> None:
    student = f"{unique_id}-s"
    version = Worker(ch_client, student, f"{unique_id}-c").complete_lesson()
    async with open_stream(served.url, auth("boss", "admin"), f"?studentId={student}") as stream:
        event = await stream.next()
    assert int(event["id"]) == version and orjson.loads(event["data"])["studentId"] == student


def test_clickhouse_down_is_the_realtime_503() -> None:
    app = create_app(settings(), DownClient(), None, clock=lambda: NOW)  # type: ignore[arg-type]
    with Served(app) as down:
        answers = [httpx.get(f"{down.url}/api/dashboard/{path}", headers=auth("s1"))
                   for path in ("stream", "realtime")]  # fmt: skip
    assert [a.status_code for a in answers] == [503, 503]
    assert answers[0].json() == answers[1].json()
    assert answers[0].headers["retry-after"] == "1"


async def test_500_dropped_streams_free_everything(
    served: Served, ch_client: Client, unique_id: str
) -> None:
    """Clients that go away (after the first event, or before it) leave at once."""
    for n in range(50):
        Worker(ch_client, f"{unique_id}-{n}", f"{unique_id}-c").complete_lesson()
    request = (
        "GET /api/dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )

    async def one(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(request.format(token=token(f"{unique_id}-{n % 50}")).encode())
        await writer.drain()
        if n % 5:  # most wait for their first event, some leave at once
            data = b""
            while b"\n\n" not in data.split(b"\r\n\r\n", 1)[-1]:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                assert chunk, data
                data += chunk
            assert b" 200 " in data.split(b"\r\n", 1)[0] and b"event: dashboard" in data
        writer.close()

    hub: StreamHub = served.app.state.streams
    for batch in range(5):
        await asyncio.gather(*(one(batch * 100 + n) for n in range(100)))
    deadline = time.monotonic() + 5
    while len(hub) or open_streams(served):
        assert time.monotonic() < deadline, f"{len(hub)} streams still open"
        await asyncio.sleep(0.05)
    assert not hub._topics  # no student is watched any more


def test_stopping_the_server_ends_open_streams(ch_client: Client, unique_id: str) -> None:
    """uvicorn waits for open responses at shutdown; ``ApiServer`` ends the streams first."""
    app = create_app(settings(), ch_client, None, clock=lambda: NOW)  # type: ignore[arg-type]
    served = Served(app).__enter__()
    lines: list[str] = []

    def follow() -> None:
        with httpx.stream("GET", f"{served.url}/api/dashboard/stream",
                          headers=auth(f"{unique_id}-s"), timeout=30) as response:  # fmt: skip
            for line in response.iter_lines():
                lines.append(line)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 5
    while not any(line.startswith("data:") for line in lines):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    served.__exit__(None, None, None)
    reader.join(5)
    assert not reader.is_alive() and time.monotonic() - started < 5
    assert any(line.startswith("event: dashboard") for line in lines)
