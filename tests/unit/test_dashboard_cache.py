"""The API's kept dashboard payloads (``api.dashboard_cache``).

The cache's rules run on a fake clock; the change feed runs against the
session's embedded ClickHouse (real parts, real merges); the HTTP test runs the
real app with its lifespan, so the feed thread polls as in production, and
checks that a newer row written by "the worker" replaces what the API answers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.change_feed import ChangeFeed
from api.dashboard_cache import REMEMBER_SECONDS, DashboardCache
from api.main import create_app
from api.models import ProgressUpdateRequest
from api.progress import build_event
from infra.settings import Settings
from schemas.events import parse_event
from streams import rows
from streams.student_state import StudentState
from tests.unit.test_api_http import NOW, SECRET, FakePublisher, auth, insert, known

_versions = itertools.count(time.time_ns())
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fresh_cache(capacity: int = 10) -> tuple[DashboardCache, FakeClock]:
    clock = FakeClock()
    cache = DashboardCache(capacity, stale_after=2.0, clock=clock)
    cache.changed((), clock.now)  # one poll done
    return cache, clock


# ------------------------------------------------------------------ the rules
def test_nothing_is_answered_before_the_feed_polled() -> None:
    clock = FakeClock()
    cache = DashboardCache(10, clock=clock)
    cache.put("s1", "p", 5, clock.now)
    assert cache.get("s1") is None and len(cache) == 0
    cache.changed((), clock.now)
    cache.put("s1", "p", 5, clock.now)
    assert cache.get("s1") == "p"


def test_a_stale_feed_answers_nothing() -> None:
    cache, clock = fresh_cache()
    cache.put("s1", "p", 5, clock.now)
    clock.now += 2.5  # no poll for longer than stale_after
    assert cache.get("s1") is None
    cache.changed((), clock.now)
    assert cache.get("s1") == "p"


def test_a_newer_version_drops_the_payload_and_an_equal_one_keeps_it() -> None:
    cache, clock = fresh_cache()
    cache.put("s1", "p1", 5, clock.now)
    cache.put("s2", "p2", 7, clock.now)
    cache.changed([("s1", 5), ("s2", 8)], clock.now)
    assert cache.get("s1") == "p1"
    assert cache.get("s2") is None


def test_a_read_that_raced_with_a_newer_row_is_not_kept() -> None:
    cache, clock = fresh_cache()
    read_started = clock.now
    cache.changed([("s1", 9)], clock.now + 0.1)  # the feed saw version 9 meanwhile
    cache.put("s1", "old", 8, read_started)
    assert cache.get("s1") is None
    cache.put("s1", "new", 9, clock.now)
    assert cache.get("s1") == "new"


def test_a_read_older_than_the_remembered_versions_is_not_kept() -> None:
    cache, clock = fresh_cache()
    read_started = clock.now
    for _ in range(3):  # two rotations: what the feed saw before may be forgotten
        clock.now += REMEMBER_SECONDS
        cache.changed((), clock.now)
    cache.put("s1", "p", 5, read_started)
    assert cache.get("s1") is None
    cache.put("s1", "p", 5, clock.now)
    assert cache.get("s1") == "p"


def test_versions_are_remembered_across_one_rotation() -> None:
    cache, clock = fresh_cache()
    read_started = clock.now
    cache.changed([("s1", 9)], clock.now)
    clock.now += REMEMBER_SECONDS
    cache.changed((), clock.now)  # rotates: version 9 is now in the older generation
    cache.put("s1", "old", 8, read_started)
    assert cache.get("s1") is None


def test_an_older_payload_does_not_replace_a_newer_one() -> None:
    cache, clock = fresh_cache()
    cache.put("s1", "new", 9, clock.now)
    cache.put("s1", "old", 8, clock.now)
    assert cache.get("s1") == "new"


def test_least_recently_used_go_first() -> None:
    cache, clock = fresh_cache(capacity=2)
    cache.put("a", "pa", 1, clock.now)
    cache.put("b", "pb", 1, clock.now)
    assert cache.get("a") == "pa"  # b is now the least recently used
    cache.put("c", "pc", 1, clock.now)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("pa", None, "pc")


def test_capacity_zero_keeps_nothing() -> None:
    cache, clock = fresh_cache(capacity=0)
    cache.put("a", "pa", 1, clock.now)
    assert cache.get("a") is None


# ------------------------------------------------------------- the change feed
def dashboard(client: Client, student: str, payload: str) -> int:
    version = next(_versions)
    insert(client, "student_dashboard", [[student, payload, version]])
    return version


def test_feed_drops_exactly_the_students_written_since(ch_client: Client, unique_id: str) -> None:
    a, b, c = (f"{unique_id}-{x}" for x in "abc")
    va, vb = dashboard(ch_client, a, "[a1]"), dashboard(ch_client, b, "[b1]")
    cache = DashboardCache(10)
    feed = ChangeFeed(ch_client, [cache], clock=cache.clock)
    assert feed.poll() == 0  # the first poll only takes the position
    cache.put(a, "[a1]", va, cache.clock())
    cache.put(b, "[b1]", vb, cache.clock())
    dashboard(ch_client, b, "[b2]")
    dashboard(ch_client, c, "[c1]")
    assert feed.poll() >= 2
    assert cache.get(a) == "[a1]"
    assert cache.get(b) is None
    assert feed.poll() == 0  # nothing new


def test_feed_sees_rows_merged_before_it_polled(ch_client: Client, unique_id: str) -> None:
    student = f"{unique_id}-m"
    first = dashboard(ch_client, student, "[1]")
    cache = DashboardCache(10)
    feed = ChangeFeed(ch_client, [cache], clock=cache.clock)
    feed.poll()
    cache.put(student, "[1]", first, cache.clock())
    dashboard(ch_client, student, "[2]")
    ch_client.command("OPTIMIZE TABLE student_dashboard FINAL")  # merged into one part
    feed.poll()
    assert cache.get(student) is None


def test_feed_failure_leaves_the_cache_stale(unique_id: str) -> None:
    class Down:
        def query(self, *_a: Any, **_k: Any) -> Any:
            raise OSError("connection refused")

    clock = FakeClock()
    cache = DashboardCache(10, stale_after=2.0, clock=clock)
    cache.changed((), clock.now)
    cache.put("s", "p", 1, clock.now)
    with pytest.raises(OSError):
        ChangeFeed(Down(), [cache], clock=cache.clock).poll()
    clock.now += 3
    assert cache.get("s") is None


# --------------------------------------------------------- through the real app
def lesson(student: str, course: str, n: int) -> Any:
    event = {
        "eventId": f"{student}-e{n}", "type": "lesson_progress", "studentId": student,
        "courseId": course, "lessonId": f"l{n}", "completed": True, "timeSpent": 5,
        "occurredAt": (NOW - dt.timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }  # fmt: skip
    return parse_event(orjson.dumps(event), now=NOW, max_future=dt.timedelta(days=1))


def write_like_the_worker(client: Client, state: StudentState) -> None:
    insert(client, "student_dashboard", [rows.dashboard_row(state, NOW, next(_versions))])


def test_app_answers_from_kept_payloads_until_a_newer_row(
    ch_client: Client, unique_id: str
) -> None:
    from api.observability import DASHBOARD_CACHE

    student, course = f"{unique_id}-s", f"{unique_id}-c"
    state = StudentState(student)
    assert state.apply(lesson(student, course, 1))
    write_like_the_worker(ch_client, state)
    settings = Settings(EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_DASHBOARD_FEED_SECONDS=0.05)
    app = create_app(settings, ch_client, None, clock=lambda: NOW)  # type: ignore[arg-type]

    def hits() -> float:
        return DASHBOARD_CACHE.labels("hit")._value.get()  # type: ignore[no-any-return]

    with TestClient(app) as http:
        deadline = time.monotonic() + 5
        while not app.state.dashboards.fresh():  # the feed's first poll
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first = http.get("/api/dashboard/realtime", headers=auth(student)).json()
        assert first["summary"]["totalPoints"] == 10
        before = hits()
        again = http.get("/api/dashboard/statistics?days=7", headers=auth(student)).json()
        assert hits() == before + 1
        assert again["totals"]["lessonsCompleted"] == 1

        assert state.apply(lesson(student, course, 2))
        write_like_the_worker(ch_client, state)
        deadline = time.monotonic() + 5
        while True:  # the next polls of the feed drop the kept payload
            body = http.get("/api/dashboard/realtime", headers=auth(student)).json()
            if body["summary"]["totalPoints"] == 20:
                break
            assert time.monotonic() < deadline, "the newer row never showed"
            time.sleep(0.02)
        stats = http.get("/api/dashboard/statistics?days=7", headers=auth(student)).json()
        assert stats["totals"]["lessonsCompleted"] == 2


class DashboardPublisher(FakePublisher):
    """``FakePublisher`` that also writes the student's dashboard row, as the worker does."""

    def apply(self, student_id: str, event: dict[str, Any]) -> None:
        super().apply(student_id, event)
        write_like_the_worker(self.client, self.states[student_id])


def test_a_200_post_replaces_the_kept_payload_at_once(ch_client: Client, unique_id: str) -> None:
    student, course = f"{unique_id}-p", f"{unique_id}-c"
    publisher = DashboardPublisher(ch_client)
    known(ch_client, course)  # a student may only post for catalog courses
    first = {"courseId": course, "lessonId": "l1", "timeSpent": 5, "completed": True}
    publisher.apply(student, build_like_api(student, first))
    # The feed polls once a second (the most allowed): slower than the POST below.
    settings = Settings(EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_DASHBOARD_FEED_SECONDS=1)
    app = create_app(settings, ch_client, publisher, clock=lambda: NOW)
    with TestClient(app) as http:
        deadline = time.monotonic() + 5
        while not app.state.dashboards.fresh():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(2):  # read, then answered from the kept payload
            body = http.get("/api/dashboard/realtime", headers=auth(student)).json()
            assert body["summary"]["totalPoints"] == 10
        assert app.state.dashboards.get(student) is not None
        second = {"courseId": course, "lessonId": "l2", "timeSpent": 5, "completed": True}
        posted = http.post("/api/dashboard/progress/update", headers=auth(student), json=second)
        assert posted.status_code == 200, posted.text
        body = http.get("/api/dashboard/realtime", headers=auth(student)).json()
        assert body["summary"]["totalPoints"] == 20


def build_like_api(student: str, body: dict[str, Any]) -> dict[str, Any]:
    request = ProgressUpdateRequest.model_validate(body)
    return build_event(request, student, NOW, dt.timedelta(days=1))


def test_feed_notices_block_numbers_restarting() -> None:
    """A table emptied and recreated numbers its blocks from 1 again: drop everything."""

    class Scripted:
        highest = 50

        def query(self, sql: str, parameters: Any = None) -> Any:
            rows = [(self.highest,)] if "system.parts" in sql else []
            return SimpleNamespace(result_rows=rows)

    clock = FakeClock()
    cache = DashboardCache(10, stale_after=100.0, clock=clock)
    client = Scripted()
    feed = ChangeFeed(client, [cache], clock=cache.clock)
    feed.poll()
    cache.put("s", "p", 1, clock.now)
    client.highest = 3  # recreated: its blocks restart below what the feed has read
    feed.poll()
    assert cache.get("s") == "p"  # checked only every few seconds
    clock.now += 6
    feed.poll()
    assert cache.get("s") is None and feed.last_block == 3
