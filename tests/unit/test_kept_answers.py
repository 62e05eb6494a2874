"""Kept dashboard answers (``api.kept_answers``) and the fast path (``api.fast_path``).

The rules run on a ``DashboardCache`` with a fake clock and a catalog copy put in
place by hand. The app tests run ``create_app`` with its lifespan (the change
feed polls the session's embedded ClickHouse) and compare what the fast path
serves with what the route computes for the same request, byte for byte apart
from ``generatedAt``, and check that anything the fast path must not decide
(errors, unknown parameters, a newer payload, a new day) goes to the route.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api import store, views
from api.dashboard_cache import ANSWERS_PER_STUDENT, DashboardCache
from api.fast_path import bearer_token, request_key
from api.kept_answers import Basis, answer_key, keep, kept_body
from api.main import create_app
from api.observability import REQUESTS
from api.query_params import REALTIME, STATISTICS
from api.records import CatalogEntry
from infra.settings import Settings
from streams.student_state import StudentState
from tests.unit.test_api_http import NOW, SECRET, auth, insert, token
from tests.unit.test_dashboard_cache import FakeClock, lesson, write_like_the_worker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

PARIS = "Europe/Paris"


# ------------------------------------------------------------- request parsing
@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        pytest.param(REALTIME, b"", ((REALTIME, None, 0), None), id="realtime-plain"),
        pytest.param(REALTIME, b"tz=Europe%2FParis", ((REALTIME, PARIS, 0), None), id="tz"),
        pytest.param(REALTIME, b"studentId=s9", ((REALTIME, None, 0), "s9"), id="student"),
        pytest.param(STATISTICS, b"", ((STATISTICS, None, 30), None), id="default-days"),
        pytest.param(STATISTICS, b"days=365&tz=UTC", ((STATISTICS, "UTC", 365), None), id="365"),
        pytest.param(STATISTICS, b"days=1", ((STATISTICS, None, 1), None), id="one-day"),
        pytest.param(REALTIME, b"days=7", None, id="days-unknown-to-realtime"),
        pytest.param(REALTIME, b"foo=1", None, id="unknown-parameter"),
        pytest.param(REALTIME, b"tz=UTC&tz=UTC", None, id="repeated"),
        pytest.param(REALTIME, b"tz=", None, id="empty-tz"),
        pytest.param(REALTIME, b"tz=Mars%2FOlympus", None, id="unknown-zone"),
        pytest.param(REALTIME, b"tz=" + b"A" * 65, None, id="tz-too-long"),
        pytest.param(REALTIME, b"studentId=", None, id="empty-student"),
        pytest.param(REALTIME, b"studentId=" + b"s" * 129, None, id="student-too-long"),
        pytest.param(STATISTICS, b"days=0", None, id="days-0"),
        pytest.param(STATISTICS, b"days=366", None, id="days-366"),
        pytest.param(STATISTICS, b"days=030", None, id="days-not-canonical"),
        pytest.param(STATISTICS, b"days=%2B3", None, id="days-plus"),
        pytest.param(STATISTICS, b"days=%D9%A3", None, id="days-arabic-digit"),
        pytest.param(STATISTICS, b"days=abc", None, id="days-text"),
    ],
)
def test_request_key(path: str, query: bytes, expected: Any) -> None:
    assert request_key(path, query) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([(b"authorization", b"Bearer abc")], "abc", id="bearer"),
        pytest.param([(b"authorization", b"bearer  abc ")], "abc", id="as-HTTPBearer-strips"),
        pytest.param([], None, id="none"),
        pytest.param([(b"authorization", b"Basic abc")], None, id="basic"),
        pytest.param([(b"authorization", b"Bearer")], None, id="no-token"),
        pytest.param(
            [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
            None,
            id="two-headers",
        ),
    ],
)
def test_bearer_token(headers: list[tuple[bytes, bytes]], expected: str | None) -> None:
    assert bearer_token(headers) == expected


# ------------------------------------------------------------------ the rules
class CatalogClient:
    """A stand-in client whose catalog copy the tests put in place (no I/O happens)."""


@pytest.fixture
def catalog_client() -> Iterator[CatalogClient]:
    client = CatalogClient()
    entries = {"c1": CatalogEntry("c1", "Knitting", 24)}
    store.CATALOG._kept[client] = (time.monotonic(), entries)
    yield client
    store.CATALOG._kept.pop(client, None)


def kept_cache(version: int = 5) -> tuple[DashboardCache, FakeClock]:
    clock = FakeClock()
    cache = DashboardCache(10, stale_after=2.0, clock=clock)
    cache.changed((), clock.now)
    cache.put("s1", "payload", version, clock.now)
    return cache, clock


def basis(version: int = 5, today: dt.date = dt.date(2026, 11, 26)) -> Basis:
    return Basis(version, today, dt.UTC, ("c1",), {"c1": CatalogEntry("c1", "Knitting", 24)})


BODY = b'{"studentId":"s1","generatedAt":"2026-11-26T03:00:00Z","courses":[]}'


def test_a_kept_body_gets_the_current_generated_at(catalog_client: CatalogClient) -> None:
    cache, _ = kept_cache()
    key = answer_key(REALTIME, None)
    keep(cache, "s1", key, BODY, basis())
    later = NOW + dt.timedelta(minutes=5, milliseconds=250)
    served = kept_body(cache, catalog_client, "s1", key, later)
    assert served == BODY.replace(b"2026-11-26T03:00:00Z", b"2026-11-26T03:05:00.250Z")
    assert orjson.loads(served or b"")["generatedAt"] == "2026-11-26T03:05:00.250Z"


def test_a_statistics_body_is_kept_as_it_is(catalog_client: CatalogClient) -> None:
    cache, _ = kept_cache()
    key = answer_key(STATISTICS, None, 30)
    body = b'{"studentId":"s1","days":30}'
    keep(cache, "s1", key, body, basis())
    assert kept_body(cache, catalog_client, "s1", key, NOW) == body
    assert kept_body(cache, catalog_client, "s1", answer_key(STATISTICS, None, 7), NOW) is None


def test_an_answer_goes_with_its_payload(catalog_client: CatalogClient) -> None:
    cache, clock = kept_cache()
    key = answer_key(REALTIME, None)
    keep(cache, "s1", key, BODY, basis())
    cache.put("s1", "newer payload", 6, clock.now)  # a newer row was read
    assert kept_body(cache, catalog_client, "s1", key, NOW) is None
    keep(cache, "s1", key, BODY, basis(version=5))  # computed from the older one: refused
    assert kept_body(cache, catalog_client, "s1", key, NOW) is None
    keep(cache, "s1", key, BODY, basis(version=6))
    assert kept_body(cache, catalog_client, "s1", key, NOW) is not None
    cache.changed([("s1", 7)], clock.now)  # the feed saw a newer row
    assert kept_body(cache, catalog_client, "s1", key, NOW) is None


def test_an_answer_holds_for_its_day_only(catalog_client: CatalogClient) -> None:
    cache, _ = kept_cache()
    key = answer_key(REALTIME, None)
    keep(cache, "s1", key, BODY, basis(today=NOW.date()))
    assert kept_body(cache, catalog_client, "s1", key, NOW) is not None
    tomorrow = dt.datetime.combine(NOW.date() + dt.timedelta(days=1), dt.time(0), dt.UTC)
    assert kept_body(cache, catalog_client, "s1", key, tomorrow) is None


def test_an_answer_needs_the_same_catalog_entries(catalog_client: CatalogClient) -> None:
    cache, _ = kept_cache()
    key = answer_key(REALTIME, None)
    keep(cache, "s1", key, BODY, basis())
    assert kept_body(cache, catalog_client, "s1", key, NOW) is not None
    renamed = {"c1": CatalogEntry("c1", "Knitting 101", 24)}
    store.CATALOG._kept[catalog_client] = (time.monotonic(), renamed)
    assert kept_body(cache, catalog_client, "s1", key, NOW) is None
    store.CATALOG._kept[catalog_client] = (time.monotonic() - 60, basis().catalog)  # stale
    assert kept_body(cache, catalog_client, "s1", key, NOW) is None


def test_nothing_is_served_while_the_feed_is_stale(catalog_client: CatalogClient) -> None:
    cache, clock = kept_cache()
    key = answer_key(REALTIME, None)
    keep(cache, "s1", key, BODY, basis())
    clock.now += 3
    assert kept_body(cache, catalog_client, "s1", key, NOW) is None


def test_answers_per_student_are_bounded(catalog_client: CatalogClient) -> None:
    cache, _ = kept_cache()
    keys = [answer_key(STATISTICS, None, days) for days in range(1, 7)]
    for key in keys:
        keep(cache, "s1", key, b"{}", basis())
    served = [kept_body(cache, catalog_client, "s1", key, NOW) for key in keys]
    assert served.count(None) == len(keys) - ANSWERS_PER_STUDENT
    assert served[-1] == b"{}" and served[0] is None  # the oldest went first


# --------------------------------------------------------- through the real app
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def app_and_clock(ch_client: Client) -> Iterator[tuple[TestClient, Any, Clock]]:
    clock = Clock()
    settings = Settings(EDUKNIT_JWT_SECRET=SECRET, EDUKNIT_DASHBOARD_FEED_SECONDS=0.05)
    app = create_app(settings, ch_client, None, clock=clock)  # type: ignore[arg-type]
    with TestClient(app) as http:
        deadline = time.monotonic() + 5
        while not app.state.dashboards.fresh():  # the feed's first poll
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield http, app, clock


class RouteCalls:
    """Counts the answers the routes computed from kept payloads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("kept_realtime_view", "kept_statistics_view"):
            original = getattr(views, name)

            def counted(*args: Any, _original: Any = original) -> Any:
                self.count += 1
                return _original(*args)

            monkeypatch.setattr(f"api.routes.dashboard.{name}", counted)


def seeded(ch_client: Client, student: str, course: str, lessons: int = 2) -> StudentState:
    state = StudentState(student)
    for n in range(1, lessons + 1):
        assert state.apply(lesson(student, course, n))
    write_like_the_worker(ch_client, state)
    insert(ch_client, "course_catalog", [[course, "Knitting", 24, [], 0, 0, NOW.timestamp(), 1]])
    return state


def without_stamp(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(body)
    data.pop("generatedAt", None)
    return data


@pytest.mark.parametrize(
    ("path", "query", "role"),
    [
        pytest.param(REALTIME, "", None, id="realtime"),
        pytest.param(REALTIME, "?tz=America/New_York", None, id="realtime-tz"),
        pytest.param(STATISTICS, "", None, id="statistics-default"),
        pytest.param(STATISTICS, "?days=365&tz=Asia/Tokyo", None, id="statistics-365-tz"),
        pytest.param(REALTIME, "?studentId={student}", "admin", id="admin-reads-student"),
    ],
)
def test_the_fast_path_serves_what_the_route_computed(
    app_and_clock: tuple[TestClient, Any, Clock],
    ch_client: Client,
    unique_id: str,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    query: str,
    role: str | None,
) -> None:
    http, _app, clock = app_and_clock
    student, course = f"{unique_id}-s", f"{unique_id}-c"
    seeded(ch_client, student, course)
    calls = RouteCalls(monkeypatch)
    headers = auth(f"{unique_id}-admin", role) if role else auth(student)
    url = path + query.format(student=student)
    served = REQUESTS.labels(path, "GET", "200")._value.get()

    first = http.get(url, headers=headers)  # the route, read from ClickHouse: kept
    clock.now = NOW + dt.timedelta(seconds=7, milliseconds=5)
    second = http.get(url, headers=headers)  # the fast path
    assert [r.status_code for r in (first, second)] == [200, 200]
    assert calls.count == 1  # the second never reached the route
    assert second.headers["content-type"] == "application/json"
    assert second.headers["content-length"] == str(len(second.content))
    assert without_stamp(second.content) == without_stamp(first.content)
    assert orjson.loads(second.content).get("studentId") == student
    if path == REALTIME:
        assert orjson.loads(second.content)["generatedAt"] == "2026-11-26T03:00:07.005Z"
        assert second.content.replace(b"03:00:07.005Z", b"03:00:00Z") == first.content
    else:
        assert second.content == first.content
    # Computed again by the route at the same moment, from ClickHouse and then from the
    # kept payload (nothing kept this time): the same bytes.
    monkeypatch.setattr("api.routes.dashboard.keep", lambda *_args: None)
    app_and_clock[1].state.dashboards.clear()
    again = [http.get(url, headers=headers).content for _ in range(2)]
    assert again == [second.content, second.content]
    assert calls.count == 3
    assert REQUESTS.labels(path, "GET", "200")._value.get() == served + 4


@pytest.mark.parametrize(
    ("query", "header", "status"),
    [
        pytest.param("", None, 401, id="no-token"),
        pytest.param("", "Bearer not-a-jwt", 401, id="bad-token"),
        pytest.param("?studentId=someone-else", "", 403, id="other-student"),
        pytest.param("?tz=Mars/Olympus", "", 422, id="bad-tz"),
        pytest.param("?tz=UTC&tz=UTC", "", 200, id="repeated-goes-to-route"),
        pytest.param("?x=1", "", 200, id="unknown-goes-to-route"),
    ],
)
def test_what_the_fast_path_does_not_decide_goes_to_the_route(
    app_and_clock: tuple[TestClient, Any, Clock],
    ch_client: Client,
    unique_id: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    query: str,
    header: str | None,
    status: int,
) -> None:
    http, _app, _clock = app_and_clock
    student, course = f"{unique_id}-s", f"{unique_id}-c"
    seeded(ch_client, student, course)
    # kept: the plain request is answered by the fast path from now on
    assert http.get(REALTIME, headers=auth(student)).status_code == 200
    calls = RouteCalls(monkeypatch)
    headers = auth(student) if header == "" else {} if header is None else {"Authorization": header}
    answer = http.get(REALTIME + query, headers=headers)
    assert answer.status_code == status, answer.text
    if status == 200:
        assert calls.count == 1  # computed by the route
    else:
        assert "detail" in answer.json()
    assert "kept dashboard answer failed" not in caplog.text  # declined, not crashed


def test_a_newer_payload_reaches_the_fast_path(
    app_and_clock: tuple[TestClient, Any, Clock], ch_client: Client, unique_id: str
) -> None:
    http, _app, _clock = app_and_clock
    student, course = f"{unique_id}-s", f"{unique_id}-c"
    state = seeded(ch_client, student, course)
    for _ in range(3):
        assert http.get(REALTIME, headers=auth(student)).json()["summary"]["totalPoints"] == 20
    assert state.apply(lesson(student, course, 3))
    write_like_the_worker(ch_client, state)
    deadline = time.monotonic() + 5
    while http.get(REALTIME, headers=auth(student)).json()["summary"]["totalPoints"] != 30:
        assert time.monotonic() < deadline, "the newer row never showed"
        time.sleep(0.02)


def test_an_expired_token_is_refused_by_the_fast_path_too(
    app_and_clock: tuple[TestClient, Any, Clock], ch_client: Client, unique_id: str
) -> None:
    http, _app, _clock = app_and_clock
    student, course = f"{unique_id}-s", f"{unique_id}-c"
    seeded(ch_client, student, course)
    assert http.get(REALTIME, headers=auth(student)).status_code == 200
    expired = token(student, exp=int(time.time()) - 10)
    answer = http.get(REALTIME, headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
