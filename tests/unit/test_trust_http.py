"""The HTTP edge on the real app and the session's embedded ClickHouse (docs/api.md §
What a student can and cannot claim): body limits, JSON syntax and nesting, control
characters, CORS, offline docs, tokens in production, the student POST's admission
rules and the rate window. Kafka is ``FakePublisher`` (applies events like the
worker); the clock is fixed. The whole stack is exercised in
``tests/integration/test_trust.py``; expected values come from the contract.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.limits import json_problem, too_deep
from api.rate_limit import SlidingWindow
from infra.settings import Settings
from tests.unit.test_api_http import (
    NOW,
    FakePublisher,
    _versions,
    auth,
    insert,
    make_app,
    token,
)

POST = "/api/dashboard/progress/update"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture
def publisher(ch_client: Client) -> FakePublisher:
    return FakePublisher(ch_client)


@pytest.fixture
def http(ch_client: Client, publisher: FakePublisher) -> Iterator[TestClient]:
    yield make_app(ch_client, publisher)


def catalog(client: Client, course: str, total: int, lessons: list[str] | None = None) -> None:
    listed = lessons is not None
    insert(
        client, "course_catalog",
        [[course, course.title(), total, lessons or [], int(listed), 0, NOW, next(_versions)]],
    )  # fmt: skip


def body(course: str, lesson: str = "l1", **more: Any) -> dict[str, Any]:
    return {"courseId": course, "lessonId": lesson, "completed": True, "timeSpent": 5, **more}


def problem(response: Any) -> tuple[int, str, str]:
    detail = response.json()["detail"][0]
    return response.status_code, detail["field"], detail["type"]


# -------------------------------------------------------------- body limits
def test_a_body_over_64_kib_is_413_before_it_is_read(http: TestClient) -> None:
    huge = orjson.dumps({**body("c1"), "padding": "x" * 70_000})
    response = http.post(POST, headers={**auth("s1"), "Content-Type": "application/json"},
                         content=huge)  # fmt: skip
    assert response.status_code == 413
    assert response.json() == {"detail": "the body is over the limit of 65536 bytes"}


def test_a_chunked_body_is_refused_once_it_passes_the_limit(http: TestClient) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(40):  # 40 x 4 KiB: 160 KiB announced nowhere
            sent.append(1)
            yield b" " * 4096

    response = http.post(POST, headers={**auth("s1"), "Content-Type": "application/json"},
                         content=chunks())  # fmt: skip
    assert response.status_code == 413


def test_the_limits_are_settings_and_batch_paths_get_the_larger(ch_client: Client) -> None:
    small = make_app(ch_client, FakePublisher(ch_client), EDUKNIT_MAX_BODY_BYTES=2048)
    response = small.post(POST, headers=auth("s1"), json={**body("c1"), "pad": "x" * 3000})
    assert response.status_code == 413 and "2048" in response.json()["detail"]
    # /api/events is another worktree's route: here the limit answers before the 404/405.
    big = orjson.dumps([body("c1")] * 400)  # ~30 KiB: over 2 KiB, under the batch limit
    response = small.post("/api/events", headers=auth("s1"), content=big)
    assert response.status_code != 413
    response = small.post("/api/events", headers=auth("s1"), content=b"[" + b" " * 5_000_000)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        pytest.param(b'{"courseId": "c1",', "json_invalid", id="truncated"),
        pytest.param(b'{"courseId": "\xff\xfe"}', "json_invalid", id="invalid-utf8"),
        pytest.param(b'{"courseId": "\\ud800"}', "json_invalid", id="lone-surrogate"),
        pytest.param(b'{"timeSpent": NaN}', "json_invalid", id="nan"),
        pytest.param(b"[" * 33 + b"]" * 33, "json_too_deep", id="33-arrays"),
        pytest.param(b'{"a":' * 40 + b"1" + b"}" * 40, "json_too_deep", id="40-objects"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "json_too_deep", id="5000-deep"),
    ],
)
def test_malformed_or_deep_json_is_the_422_body(
    http: TestClient, content: bytes, kind: str
) -> None:
    response = http.post(POST, headers={**auth("s1"), "Content-Type": "application/json"},
                         content=content)  # fmt: skip
    assert problem(response) == (422, "body", kind)
    assert response.json()["detail"][0]["location"] == "body"


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert json_problem(b"[" * 32 + b"]" * 32, 32) is None
    assert json_problem(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 32) is None
    assert too_deep([[[]]], 3) is False and too_deep([[[[]]]], 3) is True
    assert too_deep({"a": [{"b": 1}]}, 3) is False and too_deep({"a": [{"b": {}}]}, 3)


@pytest.mark.parametrize("field", ["courseId", "lessonId", "moduleId", "eventId"])
@pytest.mark.parametrize("character", ["\u0000", "\n", "\u0085"])
def test_an_id_with_a_control_character_is_422(
    http: TestClient, publisher: FakePublisher, field: str, character: str
) -> None:
    response = http.post(POST, headers=auth("s1"), json={**body("c1"), field: f"x{character}y"})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == field
    assert publisher.calls == []


def test_a_student_id_with_a_control_character_is_refused(http: TestClient) -> None:
    read = http.get("/api/dashboard/realtime", params={"studentId": "s\x001"},
                    headers=auth("root", "admin"))  # fmt: skip
    assert read.status_code == 422 and read.json()["detail"][0]["field"] == "studentId"
    bad_sub = {"Authorization": "Bearer " + token("s\n1")}
    assert http.get("/api/dashboard/realtime", headers=bad_sub).status_code == 401


# --------------------------------------------------------------- browsers
ORIGIN = "https://learn.example.org"


def test_cors_preflight_allowed_for_a_configured_origin(ch_client: Client) -> None:
    http = make_app(
        ch_client, FakePublisher(ch_client), EDUKNIT_CORS_ORIGINS=f"{ORIGIN},http://x:1"
    )
    preflight = http.options(POST, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    read = http.get("/api/dashboard/realtime", headers={**auth("s1"), "Origin": ORIGIN})
    assert read.headers["access-control-allow-origin"] == ORIGIN
    assert "Retry-After" in read.headers["access-control-expose-headers"]


def test_cors_refused_for_another_origin_and_by_default(ch_client: Client) -> None:
    configured = make_app(ch_client, FakePublisher(ch_client), EDUKNIT_CORS_ORIGINS=ORIGIN)
    default = make_app(ch_client, FakePublisher(ch_client))
    for http, origin in ((configured, "https://evil.example.com"), (default, ORIGIN)):
        preflight = http.options(POST, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
        })  # fmt: skip
        assert preflight.status_code in (400, 405)
        assert "access-control-allow-origin" not in preflight.headers
        read = http.get("/api/dashboard/realtime", headers={**auth("s1"), "Origin": origin})
        assert "access-control-allow-origin" not in read.headers


def test_an_invalid_cors_origin_stops_the_process_at_start() -> None:
    with pytest.raises(ValueError, match="EDUKNIT_CORS_ORIGINS"):
        Settings(EDUKNIT_CORS_ORIGINS="https://ok.example.org,not an origin")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_nothing_from_another_host(http: TestClient, page: str) -> None:
    html = http.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", html.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "https://" not in html.text.replace("https://json-schema", "")
    for url in urls:
        asset = http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url


# ----------------------------------------------------------------- tokens
def test_production_requires_exp_and_honours_the_leeway(ch_client: Client) -> None:
    http = make_app(ch_client, FakePublisher(ch_client), EDUKNIT_ENV="production",
               EDUKNIT_JWT_LEEWAY_SECONDS=30)  # fmt: skip
    no_exp = {"Authorization": f"Bearer {token('s1')}"}
    response = http.get("/api/dashboard/realtime", headers=no_exp)
    assert response.status_code == 401 and "'exp'" in response.json()["detail"]
    just_expired = {"Authorization": f"Bearer {token('s1', exp=int(time.time()) - 10)}"}
    assert http.get("/api/dashboard/realtime", headers=just_expired).status_code == 200
    long_expired = {"Authorization": f"Bearer {token('s1', exp=int(time.time()) - 60)}"}
    assert http.get("/api/dashboard/realtime", headers=long_expired).status_code == 401
    development = make_app(ch_client, FakePublisher(ch_client))
    assert development.get("/api/dashboard/realtime", headers=no_exp).status_code == 200


# --------------------------------------------------- what a student may claim
def test_a_course_outside_the_catalog_is_422_on_course_id(
    http: TestClient, publisher: FakePublisher, unique_id: str
) -> None:
    response = http.post(POST, headers=auth(f"s-{unique_id}"), json=body(f"{unique_id}-none"))
    assert problem(response)[:2] == (422, "courseId")
    assert publisher.calls == []


def test_an_unlisted_lesson_is_422_on_lesson_id(
    http: TestClient, ch_client: Client, publisher: FakePublisher, unique_id: str
) -> None:
    course = f"{unique_id}-c"
    catalog(ch_client, course, 2, ["l1", "l2"])
    response = http.post(POST, headers=auth(f"s-{unique_id}"), json=body(course, "l-made-up"))
    assert problem(response)[:2] == (422, "lessonId")
    assert publisher.calls == []
    ok = http.post(POST, headers=auth(f"s-{unique_id}"), json=body(course, "l2"))
    assert ok.status_code == 200, ok.text


def test_a_service_is_not_judged(
    http: TestClient, ch_client: Client, publisher: FakePublisher, unique_id: str
) -> None:
    course = f"{unique_id}-c"
    catalog(ch_client, course, 2, ["l1"])
    for claim in (body(f"{unique_id}-none"), body(course, "l9"), body(course, timeSpent=1440)):
        response = http.post(f"{POST}?studentId=s-{unique_id}", headers=auth("svc", "service"),
                             json=claim)  # fmt: skip
        assert response.status_code in (200, 202), response.text
    assert len(publisher.calls) == 3


def test_minutes_over_1440_on_a_local_date_are_422_on_time_spent(
    http: TestClient, ch_client: Client, publisher: FakePublisher, unique_id: str
) -> None:
    student, course, other = f"s-{unique_id}", f"{unique_id}-a", f"{unique_id}-b"
    catalog(ch_client, course, 50)
    catalog(ch_client, other, 50)
    paris = {"occurredAt": "2026-11-25T23:30:00+01:00", "timezone": "Europe/Paris"}
    first = http.post(POST, headers=auth(student),
                      json=body(course, "l1", timeSpent=1000, **paris))  # fmt: skip
    assert first.status_code == 200, first.text
    # Another course, the same local date (25th in Paris): 1000 + 441 > 1440.
    over = http.post(POST, headers=auth(student), json=body(other, "l2", timeSpent=441, **paris))
    assert problem(over)[:2] == (422, "timeSpent")
    assert "1441" in over.json()["detail"][0]["message"]
    exact = http.post(POST, headers=auth(student), json=body(other, "l2", timeSpent=440, **paris))
    assert exact.status_code == 200, exact.text
    # 23:30 UTC on the 25th is the 26th in Paris: another local date.
    next_day = {"occurredAt": "2026-11-25T23:30:00Z", "timezone": "Europe/Paris"}
    later = http.post(POST, headers=auth(student),
                      json=body(course, "l3", timeSpent=600, **next_day))  # fmt: skip
    assert later.status_code == 200, later.text
    assert len(publisher.calls) == 3


def test_resending_a_counted_event_is_not_judged_again(
    http: TestClient, ch_client: Client, unique_id: str
) -> None:
    student, course = f"s-{unique_id}", f"{unique_id}-a"
    catalog(ch_client, course, 5)
    at = "2026-11-25T10:00:00Z"
    claim = body(course, timeSpent=1440, eventId=f"{unique_id}-e", occurredAt=at)
    assert http.post(POST, headers=auth(student), json=claim).status_code == 200
    again = http.post(POST, headers=auth(student), json=claim)
    assert again.status_code == 200, again.text


def test_61_requests_in_a_minute_the_last_is_429_with_retry_after(
    http: TestClient, ch_client: Client, publisher: FakePublisher, unique_id: str
) -> None:
    student, course = f"s-{unique_id}", f"{unique_id}-a"
    catalog(ch_client, course, 100)
    statuses = [
        http.post(POST, headers=auth(student), json=body(course, f"l{i}", timeSpent=0))
        for i in range(61)
    ]
    assert [r.status_code for r in statuses[:60]] == [200] * 60
    last = statuses[60]
    assert last.status_code == 429 and 1 <= int(last.headers["Retry-After"]) <= 60
    assert len(publisher.calls) == 60
    # Others are not affected; a service is never limited.
    assert http.post(POST, headers=auth(f"{student}-2"), json=body(course)).status_code == 200
    service = http.post(f"{POST}?studentId={student}", headers=auth("svc", "service"),
                        json=body(course, "l99"))  # fmt: skip
    assert service.status_code == 200


def test_the_sliding_window() -> None:
    now = [0.0]
    window = SlidingWindow(3, 60.0, clock=lambda: now[0], max_keys=2)
    for at in (0.0, 5.0, 10.0):
        now[0] = at
        assert window.admit("a") is None
    now[0] = 20.0
    assert window.admit("a") == 40  # the first request leaves the window at 60
    now[0] = 60.0
    assert window.admit("a") is None  # the first left: one more fits
    assert window.admit("a") == 5  # the second leaves at 65
    window.admit("b")
    window.admit("c")
    assert len(window) == 2  # "a", least recently used, dropped
