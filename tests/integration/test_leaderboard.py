"""Leaderboards end to end: events → broker → worker → ClickHouse → ``/api/leaderboard``.

A generated population (several courses, zones and offsets, shuffled and partly
duplicated delivery) goes through the stack as ``make run`` starts it; every
ranking asked for (each period, all courses and one, two requesters' zones, a
learner, a learner without points, an admin) must equal what
``testkit.leaderboard_reference`` computes from the events sent. Then privacy,
the visibility setting, a restart of the whole stack, and the 422s.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from testkit.compare import wait_for_match
from testkit.history import delivery_order, student_history
from testkit.leaderboard_reference import expected_leaderboard
from testkit.reference import Reference
from testkit.stack import Producer, Stack

pytestmark = pytest.mark.integration

COURSES = ["lb-knit", "lb-crochet", "lb-dye"]
STUDENTS = [f"lbs-{i:02d}" for i in range(36)]
VISIBLE = {student: f"Visible {student[-2:]}" for student in STUDENTS[:4]}
HIDDEN = {student: f"Hidden {student[-2:]}" for student in STUDENTS[4:8]}
ZONES = ["Pacific/Kiritimati", "America/Los_Angeles"]


class Population:
    """The events sent per student, and the reference computed from them."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = {}

    def references(self) -> dict[str, Reference]:
        return {student: Reference(events, {}) for student, events in self.sent.items()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(Path(tmp_path_factory.mktemp("leaderboard"))).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def population(stack: Stack) -> Population:
    rng = random.Random(11_2026)
    now = dt.datetime.now(dt.UTC)
    producer = Producer(stack.bootstrap)
    population = Population()
    everything: list[dict[str, Any]] = []
    for student in STUDENTS[:-2]:  # the last two have no events: never ranked
        events = student_history(rng, student, COURSES, now, days=rng.randint(8, 45))
        population.sent[student] = delivery_order(rng, events)
        everything += population.sent[student]
    rng.shuffle(everything)
    for event in everything:
        producer.event(event)
    producer.flush()
    for student, name in {**VISIBLE, **HIDDEN}.items():
        put = httpx.put(
            f"{stack.base_url}/api/leaderboard/me", headers=bearer(stack, student),
            json={"visible": student in VISIBLE, "name": name}, timeout=30,
        )  # fmt: skip
        assert put.status_code == 200, put.text
    return population


def bearer(stack: Stack, student: str, role: str = "student") -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(student, role)}"}


def ask(stack: Stack, who: str, role: str = "student", **params: Any) -> httpx.Response:
    return httpx.get(
        f"{stack.base_url}/api/leaderboard", params=params, headers=bearer(stack, who, role),
        timeout=30,
    )  # fmt: skip


def today_of(answer: dict[str, Any], zone: str, before: dt.datetime) -> dt.date:
    """The today the answer used, checked against the zone's date around the request."""
    used = dt.date.fromisoformat(answer["to"])
    after = dt.datetime.now(dt.UTC)
    assert used in {before.astimezone(ZoneInfo(zone)).date(), after.astimezone(ZoneInfo(zone))
                    .date()}, f"'to' {used} is not today in {zone}"  # fmt: skip
    return used


def differences(stack: Stack, population: Population) -> list[str]:
    """Every asked ranking against the reference; empty when all match."""
    references = population.references()
    problems: list[str] = []
    cases = [
        (who, role, period, course, zone, limit)
        for period in ("week", "month", "all")
        for course in (None, COURSES[0])
        for zone in ZONES
        for who, role, limit in (
            (STUDENTS[5], "student", 100), (STUDENTS[-1], "student", 5), ("lb-admin", "admin", 7)
        )
    ]  # fmt: skip
    for who, role, period, course, zone, limit in cases:
        params = {"period": period, "tz": zone, "limit": limit}
        if course is not None:
            params["courseId"] = course
        before = dt.datetime.now(dt.UTC)
        response = ask(stack, who, role, **params)
        if response.status_code != 200:
            problems.append(f"{params} as {who}: {response.status_code} {response.text}")
            continue
        answer = response.json()
        expected = expected_leaderboard(
            references, period, course, today_of(answer, zone, before), requester=who,
            admin=role == "admin", limit=limit, visible=VISIBLE,
        )  # fmt: skip
        if answer != expected:
            problems.append(f"{params} as {who}:\n  got      {answer}\n  expected {expected}")
    return problems


def test_rankings_equal_the_reference(stack: Stack, population: Population) -> None:
    wait_for_match(lambda: differences(stack, population), timeout=120)


def test_without_tz_today_is_the_requesters_latest_zone(
    stack: Stack, population: Population
) -> None:
    student = STUDENTS[6]
    reference = population.references()[student]

    def check() -> list[str]:
        answer = ask(stack, student, period="week").json()
        today = reference.today(dt.datetime.now(dt.UTC))
        expected = expected_leaderboard(
            population.references(), "week", None, today, requester=student, visible=VISIBLE
        )
        return [] if answer == expected else [f"got {answer}\nexpected {expected}"]

    wait_for_match(check, timeout=60)


def test_a_student_sees_no_other_id_and_no_hidden_name(
    stack: Stack, population: Population
) -> None:
    wait_for_match(lambda: differences(stack, population), timeout=120)
    for student in (STUDENTS[0], STUDENTS[5], STUDENTS[-1]):
        for period in ("week", "all"):
            text = ask(stack, student, period=period, limit=100).text
            others = [s for s in STUDENTS if s != student and s in text]
            assert not others, f"{student} sees {others}"
            assert "Hidden" not in text
    admin = ask(stack, "lb-admin", "admin", period="all", limit=100).json()
    assert all(entry["studentId"] in population.sent for entry in admin["entries"])
    assert len(admin["entries"]) == admin["ranked"] > 0
    names = {entry["name"] for entry in admin["entries"]}
    assert set(VISIBLE.values()) <= names and not names & set(HIDDEN.values())


def test_a_visibility_change_shows_on_the_next_read(stack: Stack, population: Population) -> None:
    student = max(population.sent, key=lambda s: population.references()[s].total_points())
    wait_for_match(lambda: differences(stack, population), timeout=120)
    put = httpx.put(f"{stack.base_url}/api/leaderboard/me", headers=bearer(stack, student),
                    json={"visible": True, "name": "Top Knitter"}, timeout=30)  # fmt: skip
    assert put.json() == {"visible": True, "name": "Top Knitter"}
    answer = ask(stack, STUDENTS[-1], period="all", limit=100).json()
    assert "Top Knitter" in [entry["name"] for entry in answer["entries"]]
    httpx.put(f"{stack.base_url}/api/leaderboard/me", headers=bearer(stack, student),
              json={"visible": False}, timeout=30)  # fmt: skip
    assert "Top Knitter" not in ask(stack, STUDENTS[-1], period="all", limit=100).text


def test_bad_queries_are_422(stack: Stack) -> None:
    for params, field in (
        ({"period": "year"}, "period"), ({}, "period"),
        ({"period": "week", "limit": 0}, "limit"), ({"period": "week", "limit": 101}, "limit"),
        ({"period": "week", "courseId": ""}, "courseId"),
        ({"period": "week", "courseId": "x" * 129}, "courseId"),
    ):  # fmt: skip
        response = ask(stack, STUDENTS[0], **params)
        assert response.status_code == 422, (params, response.text)
        assert [p["field"] for p in response.json()["detail"]] == [field]
    assert httpx.get(f"{stack.base_url}/api/leaderboard?period=week", timeout=10).status_code == 401


def test_settings_and_rankings_survive_a_restart(stack: Stack, population: Population) -> None:
    wait_for_match(lambda: differences(stack, population), timeout=120)
    assert stack.stop() == 0, stack.log_tail()
    again = Stack(stack.data_dir).start()  # a new, empty broker; the same ClickHouse
    try:
        for student, name in {**VISIBLE, **HIDDEN}.items():
            mine = httpx.get(f"{again.base_url}/api/leaderboard/me",
                             headers=bearer(again, student), timeout=30).json()  # fmt: skip
            assert mine == {"visible": student in VISIBLE, "name": name}
        wait_for_match(lambda: differences(again, population), timeout=60)
        late = STUDENTS[-2]  # a learner's first points, after the restart
        producer = Producer(again.bootstrap)
        event = {
            "eventId": f"{late}-{uuid.uuid4().hex[:8]}", "type": "lesson_progress",
            "studentId": late, "courseId": COURSES[0], "lessonId": "l-new", "completed": True,
            "occurredAt": dt.datetime.now(dt.UTC).isoformat(),
        }  # fmt: skip
        producer.event(event)
        producer.flush()
        population.sent[late] = [event]
        wait_for_match(lambda: differences(again, population), timeout=60)
    finally:
        again.stop()
