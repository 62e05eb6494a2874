"""Duplicates re-sent seconds later and long after, beyond the recent-ids window.

``EDUKNIT_RECENT_IDS_DAYS`` is set to 1, so most events of the 40-day histories
(and events from a year ago) are older than the window the worker keeps ids
for: their duplicates are recognised through ``learning_events``. Everything is
sent again twice, once right away and once after a worker restart (its memory
empty), and counted once: the duplicate metric counts every re-sent event and
the dashboards equal the reference.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.harness import FaultStack, RetryingProducer, all_match, interleave, running
from testkit.history import student_history

pytestmark = pytest.mark.integration

COURSES = ["d-knit", "d-dye", "d-spin"]
CATALOG = {"d-knit": ("Knitting", 6), "d-spin": ("Spinning", 3)}


def _year_old(student: str, index: int, now: dt.datetime) -> dict[str, Any]:
    at = now - dt.timedelta(days=365 + index)
    return {
        "eventId": f"{student}-old-{index}", "type": "quiz_completed", "studentId": student,
        "courseId": "d-knit", "quizId": f"q-old-{index}", "score": 40 + index, "timeSpent": 7,
        "occurredAt": at.isoformat(timespec="milliseconds"),
    }  # fmt: skip


def test_duplicates_count_once_beyond_the_recent_window(tmp_path: Path) -> None:
    rng = random.Random(99)
    now = dt.datetime.now(dt.UTC)
    histories = {
        f"d-{i}": student_history(rng, f"d-{i}", COURSES, now, 40)
        + [_year_old(f"d-{i}", j, now) for j in range(3)]
        for i in range(8)
    }
    with running(FaultStack(tmp_path, EDUKNIT_RECENT_IDS_DAYS="1")) as stack:
        producer = RetryingProducer(stack.bootstrap)
        for course, (title, total) in CATALOG.items():
            producer.course(course, title, total)
        for event in interleave(rng, histories):
            producer.send(event)
        producer.flush()
        all_match(stack, producer.sent, CATALOG)
        unique = producer.unique()
        duplicates_before = stack.metric_sum("eduknit_events_duplicate_total")

        assert producer.resend_all(rng) == unique  # seconds later
        producer.flush()
        all_match(stack, producer.sent, CATALOG)
        assert stack.metric_sum("eduknit_events_duplicate_total") - duplicates_before == unique

        stack.kill_worker()  # the worker's memory is gone: ids come back from ClickHouse
        producer.resend_all(rng)
        producer.flush()
        all_match(stack, producer.sent, CATALOG)
        assert stack.metric_sum("eduknit_events_duplicate_total") >= unique


def test_duplicate_of_an_old_event_while_its_batch_is_not_written(tmp_path: Path) -> None:
    student = "d-race"
    old = _year_old(student, 0, dt.datetime.now(dt.UTC))
    with running(FaultStack(tmp_path)) as stack:
        producer = RetryingProducer(stack.bootstrap)
        stack.clickhouse_down(True, writes_only=True)  # batch N is processed, not written
        producer.send(old)
        producer.flush()
        time.sleep(2)
        producer.send(old)  # the duplicate, in a later batch while N is still unwritten
        producer.flush()
        time.sleep(2)
        stack.clickhouse_down(False)
        all_match(stack, producer.sent, {}, timeout=30)
