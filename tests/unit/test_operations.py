"""The pure parts of the operations tools: recomputation and comparison, control
messages, answer diffs, query selection, JSON logs, the resync rebuild's rows.

Events go through the real processor (with the in-memory store of
``test_processor``), so what is compared is what the worker wrote; the expected
results are stated from the events, not copied from the code's output.
"""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from eduknit import answers
from infra import logs, ops_queries
from streams import consistency, resync, rows
from streams.processor import EventProcessor, Message
from tests.unit.test_processor import MemoryStore, lesson, quiz

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
EPOCH = dt.date(1970, 1, 1)


def message(payload: Any, offset: int, key: bytes | None = None) -> Message:
    value = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    student = payload["studentId"] if isinstance(payload, dict) else "s1"
    return Message("learning-events", 0, offset, key or student.encode(), value)


def counted(store: MemoryStore) -> list[tuple[Any, ...]]:
    """``learning_events`` as the "events" query of ``infra.ops_queries`` returns it."""
    names = rows.COLUMNS["learning_events"]
    found = []
    for row in store.tables["learning_events"].values():
        r = dict(zip(names, row, strict=True))
        found.append((
            r["event_id"], r["student_id"], r["type"], r["course_id"], r["module_id"],
            r["lesson_id"], r["quiz_id"], round(r["occurred_at"] * 1000),
            (r["local_date"] - EPOCH).days, r["timezone"], r["completed"],
            r["time_spent_minutes"], r["progress"], r["score"], r["batch_version"],
        ))  # fmt: skip
    return found


def dashboards(store: MemoryStore) -> list[list[Any]]:
    return list(store.tables["student_dashboard"].values())


def pipeline(*batches: list[dict[str, Any]]) -> MemoryStore:
    """Run batches through the processor into a store, like the worker."""
    store = MemoryStore()
    processor = EventProcessor(store)
    offset = 0
    for version, events in enumerate(batches, 1):
        messages = []
        for event in events:
            messages.append(message(event, offset))
            offset += 1
        result = processor.process(messages, NOW, version * 10)
        store.write(result)
        processor.written(result)
    return store


HISTORY = [
    [lesson("e1", "2026-11-20T10:00:00Z"), lesson("e2", "2026-11-21T10:00:00Z", "l2")],
    [quiz("e3", "2026-11-22T10:00:00Z", 85), lesson("e1", "2026-11-20T10:00:00Z")],
    [lesson("e4", "2026-11-23T10:00:00Z", "l3", student="s2")],
]


def test_recomputation_matches_what_the_worker_wrote() -> None:
    store = pipeline(*HISTORY)
    found = consistency.compare(dashboards(store), counted(store), NOW)
    assert set(found) == {"s1", "s2"}
    assert all(c.differences == [] for c in found.values())
    assert found["s1"].events == 3  # e1 counted once


def test_a_tampered_payload_is_named_by_part_and_field() -> None:
    store = pipeline(*HISTORY)
    row = store.tables["student_dashboard"][("s1",)]
    data = orjson.loads(row[1])
    data[0] += 50  # total points
    data[5][0][3] += 1  # completed lessons of the first course
    store.insert("student_dashboard", [["s1", orjson.dumps(data).decode(), row[2] + 1]])
    found = consistency.compare(dashboards(store), counted(store), NOW)
    assert found["s1"].differences == ["totalPoints", "courses[c1].completedLessons"]
    assert found["s2"].differences == []


def test_events_written_after_the_payload_are_not_held_against_it() -> None:
    store = pipeline(*HISTORY)
    late = counted(store)
    late.append(("e9", "s2", "lesson_progress", "c1", None, "l9", None,
                 1_764_000_000_000, 20_415, "UTC", 1, 5.0, None, None, 999))  # fmt: skip
    assert consistency.compare(dashboards(store), late, NOW)["s2"].differences == []


def test_missing_dashboard_and_missing_events_are_differences() -> None:
    store = pipeline(*HISTORY)
    events = [row for row in counted(store) if row[1] == "s1"]
    found = consistency.compare(dashboards(store), events, NOW, ["s3"])
    assert found["s2"].differences == ["no counted events"]
    assert found["s3"].differences == []  # never seen: nothing to compare
    only_events = consistency.compare([], events, NOW)
    assert only_events["s1"].differences == ["dashboard missing"]


def test_old_days_without_completions_are_not_compared() -> None:
    old = (NOW.date() - dt.timedelta(days=consistency.API_DAYS + 5)).isoformat()
    day = [old, "c1", 10.0, 0, 0, 1, 80.0, 8, None]
    base = [0, [], [], "UTC", [], [], []]
    with_old = orjson.dumps([*base[:6], [day]])
    cutoff = (NOW.date() - dt.timedelta(days=consistency.API_DAYS)).isoformat()
    assert consistency.payload_differences(with_old, orjson.dumps(base), cutoff) == []
    completed = [old, "c1", 10.0, 1, 1, 0, 0.0, 10, 1]
    with_completion = orjson.dumps([*base[:6], [completed]])
    assert consistency.payload_differences(with_completion, orjson.dumps(base), cutoff) == [
        f"days[{old} c1] extra"
    ]


def test_controls_are_split_from_events_and_bad_ones_stay_for_the_dead_letters() -> None:
    event = message(lesson("e1", "2026-11-20T10:00:00Z"), 0)
    control = Message("learning-events", 3, 1, b"s1", resync.control_message("s1", "r1"))
    wrong_key = Message("learning-events", 3, 2, b"s2", resync.control_message("s1", "r1"))
    not_json = Message("learning-events", 3, 3, b"s1", resync.CONTROL_PREFIX + b" oops")
    others, controls = resync.split_controls([event, control, wrong_key, not_json])
    assert controls == [resync.Control("s1", 3, "r1")]
    assert others == [event, wrong_key, not_json]
    assert resync.split_controls([event]) == ([event], [])


class FakeClient:
    """Answers the "events" query of ``infra.ops_queries`` from rows."""

    def __init__(self, event_rows: list[tuple[Any, ...]]) -> None:
        self.event_rows = event_rows

    def query(self, sql: str, parameters: dict[str, Any]) -> Any:
        assert "FROM learning_events" in sql
        found = [r for r in self.event_rows if r[1] in parameters["ids"]]
        return SimpleNamespace(result_rows=found)


def test_rebuild_rows_rewrite_every_row_of_the_student() -> None:
    store = pipeline(*HISTORY)
    sink: Any = type("Sink", (), {"client": FakeClient(counted(store))})()
    controls = [resync.Control("s1", 2, "r"), resync.Control("nobody", 1, "r")]
    rebuilt = resync.rebuild_rows(sink, controls, NOW, 100, 101, 0)
    assert [s.student_id for s in rebuilt.states] == ["s1"]  # nothing to rebuild for nobody
    tables = rebuilt.tables
    # s1: one course; lessons on Nov 20 and 21 and a quiz on Nov 22: three days
    assert [r[1] for r in tables["student_courses"]] == ["c1"]
    assert sorted(str(r[1]) for r in tables["student_course_daily"]) == [
        "2026-11-20", "2026-11-21", "2026-11-22",
    ]  # fmt: skip
    assert tables["student_summary"][0][1] == 10 + 10 + 8  # two lessons and floor(85 / 10)
    assert all(r[-1] == 100 for t in tables.values() for r in t)
    assert rebuilt.snapshot[0][0] == "s1" and rebuilt.snapshot[0][1] == 2
    assert rebuilt.snapshot[0][3] == 101 and rebuilt.states[0].version == 101
    assert rebuilt.events == 3


def test_answer_differences_name_fields() -> None:
    store = pipeline(*HISTORY)
    stored = store.tables["student_dashboard"][("s1",)][1]
    data = orjson.loads(stored)
    data[0] += 100
    served = answers.answers("s1", orjson.dumps(data).decode(), {}, NOW)
    truth = answers.answers("s1", stored, {}, NOW)
    fields = {name: (x, y) for name, x, y in answers.differences(served, truth)}
    assert fields["realtime.summary.totalPoints"] == (128, 28)
    assert fields["realtime.summary.level"] == (2, 1)
    assert answers.differences(truth, truth) == []


def test_flatten_keys_lists_by_id() -> None:
    flat = answers.flatten({"courses": [{"courseId": "c1", "progress": 5}], "x": [1]})
    assert flat == {"courses[c1].courseId": "c1", "courses[c1].progress": 5,
                    "courses.length": 1, "x.length": 1, "x[0]": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("dataset", "selection", "problem"),
    [
        ("nope", {}, "unknown dataset"),
        ("events", {}, "needs ids"),
        ("events", {"ids": ["a"] * (ops_queries.MAX_IDS + 1)}, "at most"),
        ("events", {"ids": [1]}, "list of student ids"),
        ("sample", {"n": 0}, "sample needs n"),
    ],
)
def test_queries_refuse_bad_selections(dataset: str, selection: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ops_queries.statement(dataset, selection)


def test_queries_select_by_ids_or_range() -> None:
    sql, params = ops_queries.statement("events", ops_queries.by_range("a", "b"))
    assert "student_id >= {first:String}" in sql and params == {"first": "a", "last": "b"}
    sql, params = ops_queries.statement("counts")
    assert "WHERE" not in sql and params == {}
    sql, params = ops_queries.statement("counts", ops_queries.by_ids(["a"]))
    assert "WHERE student_id IN" in sql and params == {"ids": ["a"]}


def test_json_log_lines() -> None:
    record = logging.LogRecord("eduknit.worker", logging.WARNING, __file__, 1, "x=%d", (3,), None)
    line = orjson.loads(logs.JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "eduknit.worker"
    assert line["message"] == "x=3" and line["time"].endswith("+00:00")
