"""The dashboard payload gives the API exactly what the aggregate tables give.

Varied histories go through the real processor and sink into the embedded
engine; for every student, ``api.store.load_student`` (one ``student_dashboard``
row + the catalog) must return the same records as the four-table read it
replaces (``load_student_from_aggregates``), for the ranges the views ask for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from api import payload, store
from api.catalog_cache import CatalogCache
from streams.processor import EventProcessor, Message
from streams.sink import ClickHouseSink
from testkit.history import delivery_order, student_history

NOW = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)


def _sorted(data: store.StudentData) -> tuple[object, ...]:
    summary = data.summary
    if summary is not None and isinstance(summary.recent_activity, str):  # the table's JSON text
        recent = orjson.loads(summary.recent_activity)
        summary = dataclasses.replace(summary, recent_activity=recent)
    # Only the payload carries the first completions and quiz awards (api.lesson_rules).
    courses = [c._replace(lessons=None, quiz_awards=None) for c in data.courses]
    return (
        sorted(courses, key=lambda c: c.course_id),
        data.catalog,
        summary,
        sorted(data.days, key=lambda d: (d.local_date, d.course_id)),
    )


@pytest.fixture(scope="module")
def written(ch_client: Client) -> list[str]:
    """Students whose histories were processed in several batches and written.

    The catalog's course has more lessons than any history completes: the two reads
    differ where the lesson rules leave completions out (the aggregate tables hold no
    lesson ids; tests/unit/test_lesson_rules.py)."""
    rng = random.Random(4)
    prefix = f"payload-{rng.randrange(10**9)}"
    courses = [f"{prefix}-c{i}" for i in range(4)]
    ch_client.command(
        "INSERT INTO course_catalog (course_id, title, total_lessons, deleted, updated_at, "
        "version) VALUES ({a:String}, 'Knit', 60, 0, now64(3), 1), "
        "({b:String}, 'Gone', 3, 1, now64(3), 1)",
        parameters={"a": courses[0], "b": courses[1]},
    )
    students = [f"{prefix}-s{i}" for i in range(12)]
    events = []
    for student in students:
        history = student_history(rng, student, courses, NOW, days=40)
        events += delivery_order(rng, history)
    messages = [
        Message("learning-events", 0, i, e["studentId"].encode(), orjson.dumps(e))
        for i, e in enumerate(events)
    ]
    sink = ClickHouseSink(ch_client, embedded_engine=True)
    processor = EventProcessor(sink)
    for version, start in enumerate(range(0, len(messages), 37), start=1):
        sink.write(processor.process(messages[start : start + 37], NOW, version).tables)
    return students


@pytest.mark.parametrize(
    ("back", "active"), [(8, True), (0, False), (30, False), (366, False)], ids=str
)
def test_payload_equals_aggregates(
    ch_client: Client, written: list[str], back: int, active: bool
) -> None:
    today = NOW.date()
    since, until = today - dt.timedelta(days=back), today + dt.timedelta(days=1)
    for student in written:
        fast = store.load_student(ch_client, student, since, until, all_active_days=active)
        slow = store.load_student_from_aggregates(
            ch_client, student, since, until, all_active_days=active
        )
        assert fast.summary is not None and fast.courses
        assert _sorted(fast) == _sorted(slow), student


def test_catalog_cache_reads_again_after_ttl_or_for_an_unknown_course(ch_client: Client) -> None:
    clock = [0.0]
    cache = CatalogCache(ttl=1.0, clock=lambda: clock[0])
    course = f"cache-{random.randrange(10**9)}"

    def publish(title: str, version: int) -> None:
        ch_client.command(
            "INSERT INTO course_catalog (course_id, title, total_lessons, deleted, updated_at, "
            "version) VALUES ({c:String}, {t:String}, 5, 0, now64(3), {v:UInt64})",
            parameters={"c": course, "t": title, "v": version},
        )

    assert cache.entries(ch_client, [course]) == {}
    publish("First", 1)
    assert cache.entries(ch_client, [course])[course].title == "First"  # unknown: read again
    publish("Second", 2)
    assert cache.entries(ch_client, [course])[course].title == "First"  # kept for the ttl
    clock[0] += 1.0
    assert cache.entries(ch_client, [course])[course].title == "Second"


def test_ms_to_datetime() -> None:
    assert payload.ms_to_datetime(None) is None
    assert payload.ms_to_datetime(1_795_683_600_123) == dt.datetime(
        2026, 11, 26, 9, 0, 0, 123000, tzinfo=dt.UTC
    )
