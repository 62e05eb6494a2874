"""Stop the whole stack and start it again on the same data directory.

The embedded broker starts empty each time, so everything counted before must
come back from ClickHouse, events sent again must count once (recent ones through
the saved state, older ones through ``learning_events``: the recent-ids window is
set to one day here so both paths run), and new events must add to the old state.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from testkit.compare import check_student, wait_for_match
from testkit.history import delivery_order, student_history
from testkit.stack import Producer, Stack

pytestmark = pytest.mark.integration

COURSES = ["r-knit", "r-crochet", "r-dye"]


def _sentinel(student: str) -> dict[str, Any]:
    return {
        "eventId": f"{student}-sentinel-{uuid.uuid4().hex[:6]}", "type": "enrolled",
        "studentId": student, "courseId": COURSES[0],
        "occurredAt": dt.datetime.now(dt.UTC).isoformat(),
    }  # fmt: skip


def test_restart_keeps_counts_and_adds_new_events(tmp_path: Path) -> None:
    rng = random.Random(7)
    catalog = {"r-knit": ("Knitting", 6), "r-crochet": ("Crochet", 3)}
    now = dt.datetime.now(dt.UTC)
    histories = {f"r-{i}": student_history(rng, f"r-{i}", COURSES, now, days=10) for i in range(5)}
    # Events after the restart: half of each history is held back.
    first = {s: events[: len(events) // 2] for s, events in histories.items()}
    later = {s: events[len(events) // 2 :] for s, events in histories.items()}
    sent: dict[str, list[dict[str, Any]]] = {s: [] for s in histories}

    def send(stack: Stack, batches: dict[str, list[dict[str, Any]]], with_catalog: bool) -> None:
        producer = Producer(stack.bootstrap)
        if with_catalog:
            for course, (title, total) in catalog.items():
                producer.course(course, title, total)
        for student, events in batches.items():
            for event in [*delivery_order(rng, events), _sentinel(student)]:
                producer.event(event)
                sent[student].append(event)
        producer.flush()

    def differences(stack: Stack) -> list[str]:
        return [p for s, events in sent.items() for p in check_student(stack, s, events, catalog)]

    def matches(stack: Stack) -> None:
        wait_for_match(lambda: differences(stack), timeout=90)

    env = {"EDUKNIT_RECENT_IDS_DAYS": "1"}
    stack = Stack(tmp_path, **env).start()
    try:
        send(stack, first, with_catalog=True)
        matches(stack)
    finally:
        assert stack.stop() == 0, stack.log_tail()

    stack = Stack(tmp_path, **env).start()  # fresh, empty broker on a new port
    try:
        matches(stack)  # nothing lost, catalog included
        send(stack, first, with_catalog=False)  # everything again: all duplicates
        send(stack, later, with_catalog=False)  # and the rest of the history
        matches(stack)
    finally:
        assert stack.stop() == 0, stack.log_tail()
