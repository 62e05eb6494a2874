"""The leaderboard's ASGI fast path (``api.leaderboard_fast_path``): which queries it takes
as they are, and that what it serves is what the route answers."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.leaderboard_fast_path import LeaderboardPath, plain_query
from tests.unit.test_api_http import auth
from tests.unit.test_leaderboard_http import db, make_app  # noqa: F401 (fixture)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"period=week", ("week", None, 10, None)),
        (b"period=all&courseId=c1&limit=100&tz=Europe%2FParis", ("all", "c1", 100, "Europe/Paris")),
        (b"limit=1&period=month", ("month", None, 1, None)),
    ],
)
def test_plain_queries(query: bytes, expected: tuple[object, ...]) -> None:
    assert plain_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"", b"period=year", b"period=week&period=all", b"period=week&limit=0",
        b"period=week&limit=101", b"period=week&limit=010", b"period=week&limit=%2B5",
        b"period=week&courseId=", b"period=week&courseId=c%00", b"period=week&tz=Nowhere",
        b"period=week&studentId=s1", b"period=week&other=1",
    ],
)  # fmt: skip
def test_anything_else_goes_to_the_route(query: bytes) -> None:
    assert plain_query(query) is None


def test_the_fast_path_answers_what_the_route_answers(
    db: Client,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[bool] = []
    kept = LeaderboardPath._kept

    def spy(self: LeaderboardPath, scope: Any) -> bytes | None:
        body = kept(self, scope)
        served.append(body is not None)
        return body

    monkeypatch.setattr(LeaderboardPath, "_kept", spy)
    http: TestClient = make_app(db)
    params = {"period": "all", "tz": "UTC", "limit": "2"}
    first = http.get("/api/leaderboard", params=params, headers=auth("bob"))  # the route builds
    again = http.get("/api/leaderboard", params=params, headers=auth("bob"))  # kept: fast path
    assert served == [False, True]
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["content-type"] == "application/json"
    # a form the fast path leaves to the route gives the same answer
    routed = http.get("/api/leaderboard?period=all&tz=UTC&limit=02", headers=auth("bob"))
    assert served[-1] is False and routed.json() == first.json()
    # an admin's answer from the fast path carries the ids
    admin = http.get("/api/leaderboard", params=params, headers=auth("root", "admin")).json()
    assert [e["studentId"] for e in admin["entries"]] == ["ann", "bob"]
