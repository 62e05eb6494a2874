"""Unit tests of ``EventProcessor``: batches in, rows and dead letters out (no I/O).

The ``StateStore`` is implemented here in memory, as ClickHouse would behave:
rows replace older rows of the same key when their version is not lower
(ReplacingMergeTree), ``load_states`` reads the saved ``student_state`` blobs
and ``counted_versions`` reads ``learning_events`` (student, event) ->
``batch_version``. Tests write to it only the tables a scenario says were
written, which simulates restarts and crashes between writes. Clock fixed.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import orjson
import pytest

from schemas.dead_letter import PAYLOAD_LIMIT
from streams import rows
from streams.processor import BatchResult, EventProcessor, Message
from streams.student_state import StudentState

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=3)  # a restart some days later
TOPIC = "learning-events"

# natural key and version column of each table (infra/migrations)
KEYS = {
    "learning_events": (["student_id", "event_id"], "batch_version"),
    "student_courses": (["student_id", "course_id"], "version"),
    "student_course_daily": (["student_id", "local_date", "course_id"], "version"),
    "student_summary": (["student_id"], "version"),
    "student_state": (["student_id"], "version"),
}


def col(table: str, name: str) -> int:
    return rows.COLUMNS[table].index(name)


class MemoryStore:
    """ClickHouse as the processor sees it, in dicts."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], list[Any]]] = {t: {} for t in KEYS}
        self.loads: list[list[str]] = []
        self.lookups: list[list[tuple[str, str]]] = []

    # -- StateStore
    def load_states(self, student_ids: list[str]) -> dict[str, StudentState]:
        self.loads.append(sorted(student_ids))
        saved = self.tables["student_state"]
        blob = col("student_state", "state")
        return {
            sid: StudentState.from_dict(sid, orjson.loads(saved[(sid,)][blob]))
            for sid in student_ids
            if (sid,) in saved
        }

    def counted_versions(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        self.lookups.append(list(keys))
        events = self.tables["learning_events"]
        version = col("learning_events", "batch_version")
        return {key: events[key][version] for key in keys if key in events}

    # -- what a sink would do
    def write(self, result: BatchResult, tables: tuple[str, ...] = tuple(KEYS)) -> None:
        for table in tables:
            key_cols, version_col = KEYS[table]
            key_idx = [col(table, c) for c in key_cols]
            version_idx = col(table, version_col)
            current = self.tables[table]
            for row in result.tables.get(table, []):
                key = tuple(row[i] for i in key_idx)
                if key not in current or current[key][version_idx] <= row[version_idx]:
                    current[key] = row

    def summary(self, student_id: str) -> dict[str, Any]:
        row = self.tables["student_summary"][(student_id,)]
        return dict(zip(rows.COLUMNS["student_summary"], row, strict=True))


def message(payload: Any, offset: int, partition: int = 0, key: bytes | None = None) -> Message:
    if key is None and isinstance(payload, dict) and isinstance(payload.get("studentId"), str):
        key = payload["studentId"].encode()
    value = payload if payload is None or isinstance(payload, bytes) else orjson.dumps(payload)
    return Message(TOPIC, partition, offset, key, value)


def lesson(eid: str, when: str, lesson_id: str = "l1", student: str = "s1", **extra: Any) -> dict:
    return {
        "eventId": eid,
        "type": "lesson_progress",
        "studentId": student,
        "courseId": "c1",
        "lessonId": lesson_id,
        "completed": True,
        "timeSpent": 10,
        "occurredAt": when,
        **extra,
    }


def quiz(eid: str, when: str, score: float, student: str = "s1") -> dict:
    return {
        "eventId": eid,
        "type": "quiz_completed",
        "studentId": student,
        "courseId": "c1",
        "quizId": "q1",
        "score": score,
        "occurredAt": when,
    }


def batch(payloads: list[Any], first_offset: int = 0, partition: int = 0) -> list[Message]:
    return [message(p, first_offset + i, partition) for i, p in enumerate(payloads)]


def counted_ids(result: BatchResult) -> list[str]:
    return [
        row[col("learning_events", "event_id")] for row in result.tables.get("learning_events", [])
    ]


def no_rows(result: BatchResult) -> bool:
    return not any(result.tables.values())


HOT = "2026-11-25T10:00:00Z"  # within the 7-day recent-ids window of NOW
OLD = "2026-10-01T10:00:00Z"  # long before it


# --------------------------------------------------------------- valid + invalid


def test_batch_with_valid_and_invalid_messages() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, max_event_bytes=4096)
    huge = orjson.dumps(lesson("big", HOT, padding="x" * 100_000))
    messages = [
        message(lesson("ok-1", HOT), 10, partition=3),
        Message(TOPIC, 3, 11, b"s1", b"{not json"),
        message(quiz("ok-2", HOT, 85, student="s2"), 12, partition=3),
        message({**lesson("bad-type", HOT), "type": "lesson_started"}, 13, partition=3),
        message({k: v for k, v in lesson("x", HOT).items() if k != "eventId"}, 14, partition=3),
        message(lesson("future", "2026-11-28T09:00:00Z"), 15, partition=3),
        Message(TOPIC, 3, 16, b"s1", huge),
        Message(TOPIC, 3, 17, None, None),
    ]
    result = processor.process(messages, now=NOW, version=5)

    assert result.counted == 2 and result.duplicates == 0
    assert counted_ids(result) == ["ok-1", "ok-2"]
    event_rows = result.tables["learning_events"]
    assert [
        (r[col("learning_events", "kafka_partition")], r[col("learning_events", "kafka_offset")])
        for r in event_rows
    ] == [(3, 10), (3, 12)]
    assert sorted(result.students) == ["s1", "s2"]
    assert sorted(r[0] for r in result.tables["student_summary"]) == ["s1", "s2"]

    letters = result.dead_letters
    assert [(d.offset, d.field) for d in letters] == [
        (11, None),
        (13, "type"),
        (14, "eventId"),
        (15, "occurredAt"),
        (16, None),
        (17, None),
    ]
    assert all(d.partition == 3 and d.source_topic == TOPIC for d in letters)
    assert all(d.received_at == NOW and d.reason for d in letters)
    assert "not valid JSON" in letters[0].reason
    assert "future" in letters[3].reason
    assert "4096" in letters[4].reason
    assert "empty" in letters[5].reason
    assert letters[0].key == "s1" and letters[0].payload == "{not json"
    assert letters[4].payload_truncated is True and len(letters[4].payload) == PAYLOAD_LIMIT
    assert letters[5].key is None and letters[5].payload == ""

    dead_rows = result.tables["dead_letters"]
    assert len(dead_rows) == len(letters)
    names = rows.COLUMNS["dead_letters"]
    first = dict(zip(names, dead_rows[0], strict=True))
    assert first == {
        "received_at": NOW,
        "topic": TOPIC,
        "kafka_partition": 3,
        "kafka_offset": 11,
        "message_key": "s1",
        "reason": letters[0].reason,
        "field": None,
        "payload": "{not json",
    }
    assert dict(zip(names, dead_rows[1], strict=True))["field"] == "type"
    assert dict(zip(names, dead_rows[5], strict=True))["message_key"] == ""


def test_dead_letter_json_names_fields_in_camel_case() -> None:
    result = EventProcessor(MemoryStore()).process(
        [Message(TOPIC, 1, 2, b"k", b"[1]")], now=NOW, version=1
    )
    letter = orjson.loads(result.dead_letters[0].to_json())
    assert letter["sourceTopic"] == TOPIC and letter["payloadTruncated"] is False
    assert (letter["partition"], letter["offset"], letter["key"]) == (1, 2, "k")
    assert letter["reason"] == "not a JSON object" and letter["field"] is None


def test_invalid_utf8_payload_is_kept_readable() -> None:
    result = EventProcessor(MemoryStore()).process(
        [Message(TOPIC, 0, 0, b"\xff", b"\xff\xfe{")], now=NOW, version=1
    )
    letter = result.dead_letters[0]
    assert letter.payload == "\ufffd\ufffd{" and letter.key == "\ufffd"


def test_only_invalid_messages_give_only_dead_letters() -> None:
    store = MemoryStore()
    result = EventProcessor(store).process(batch([b"nope", b"42"]), now=NOW, version=1)
    assert result.counted == 0 and len(result.dead_letters) == 2
    assert set(result.tables) == {"dead_letters"}
    assert store.loads == [] and store.lookups == []


# --------------------------------------------------------------------- duplicates


def test_duplicates_inside_one_batch() -> None:
    store = MemoryStore()
    result = EventProcessor(store).process(
        batch(
            [
                lesson("e1", HOT),
                lesson("e1", HOT),  # the same event again
                lesson("e1", "2026-11-25T11:00:00Z", "l2"),  # same id, other content
                quiz("e2", HOT, 70),
                lesson("old-1", OLD, "l9"),
                lesson("old-1", OLD, "l9"),  # an old duplicate in the same batch
            ]
        ),
        now=NOW,
        version=1,
    )
    assert (result.counted, result.duplicates) == (3, 3)
    assert counted_ids(result) == ["e1", "e2", "old-1"]
    store.write(result)
    summary = store.summary("s1")
    assert summary["events_counted"] == 3
    assert summary["total_points"] == 10 + 7 + 10  # l1, quiz 70, l9
    assert len(result.tables["student_summary"]) == 1  # one row per touched student


def test_duplicates_across_batches() -> None:
    store = MemoryStore()
    processor = EventProcessor(store)
    first = processor.process(batch([lesson("e1", HOT), lesson("old-1", OLD, "l2")]), NOW, 1)
    store.write(first)
    again = processor.process(batch([lesson("e1", HOT), lesson("old-1", OLD, "l2")], 2), NOW, 2)
    assert (again.counted, again.duplicates) == (0, 2)
    assert no_rows(again) and again.students == []


# ------------------------------------------------------------------------- restarts


def test_restart_hot_events_are_duplicates_from_the_saved_state() -> None:
    """Recent events are recognised by the ids saved with the state (no lookup needed)."""
    store = MemoryStore()
    events = [lesson("e1", HOT), quiz("e2", HOT, 85), lesson("e3", "2026-11-20T10:00:00Z", "l2")]
    result = EventProcessor(store).process(batch(events), now=NOW, version=1)
    assert result.counted == 3
    store.write(result, tables=("student_state",))  # learning_events deliberately not saved

    restarted = EventProcessor(store)  # empty cache
    again = restarted.process(batch(events, 100), now=NOW, version=2)
    assert (again.counted, again.duplicates) == (0, 3)
    assert no_rows(again)
    assert store.loads[-1] == ["s1"]
    assert store.lookups == []  # hot events need no lookup in learning_events


def test_restart_old_events_recognised_through_counted_versions() -> None:
    store = MemoryStore()
    events = [
        lesson("old-1", OLD),
        quiz("old-2", "2026-10-02T10:00:00Z", 85),
        lesson("hot", HOT, "l2"),
    ]
    result = EventProcessor(store).process(batch(events), now=NOW, version=1)
    assert result.counted == 3
    store.write(result)
    saved = orjson.loads(store.tables["student_state"][("s1",)][col("student_state", "state")])
    assert set(saved["i"]) == {"hot"}  # old ids are not kept in the state

    restarted = EventProcessor(store)
    again = restarted.process(batch(events, 100), now=LATER, version=2)
    assert (again.counted, again.duplicates) == (0, 3)
    assert no_rows(again)
    assert sorted(store.lookups[-1]) == [("s1", "old-1"), ("s1", "old-2")]
    assert store.summary("s1")["events_counted"] == 3
    assert store.summary("s1")["total_points"] == 10 + 8 + 10


def test_without_the_learning_events_record_old_events_would_count_again() -> None:
    """Control of the test above: the record in learning_events is what stops them."""
    store = MemoryStore()
    events = [lesson("old-1", OLD)]
    store.write(EventProcessor(store).process(batch(events), NOW, 1), tables=("student_state",))
    again = EventProcessor(store).process(batch(events), NOW, 2)
    assert again.counted == 1


def test_crash_after_learning_events_before_state_is_replayed_once() -> None:
    store = MemoryStore()
    first = EventProcessor(store).process(
        batch([lesson("a", OLD), lesson("b", HOT, "l2")]), now=NOW, version=1
    )
    store.write(first)

    crashed = EventProcessor(store)
    lost = [lesson("c", "2026-10-03T10:00:00Z", "l3"), quiz("d", HOT, 55), lesson("a", OLD)]
    result = crashed.process(batch(lost, 10), now=NOW, version=2)
    assert (result.counted, result.duplicates) == (2, 1)
    store.write(result, tables=("learning_events",))  # then the worker dies

    restarted = EventProcessor(store)
    replay = restarted.process(batch(lost, 10), now=NOW, version=3)
    assert (replay.counted, replay.duplicates) == (2, 1)  # c and d applied, a still a duplicate
    assert counted_ids(replay) == ["c", "d"]
    assert {
        r[col("learning_events", "batch_version")] for r in replay.tables["learning_events"]
    } == {3}
    store.write(replay)
    summary = store.summary("s1")
    assert summary["events_counted"] == 4
    assert summary["total_points"] == 10 + 10 + 10 + 5  # l1, l2, l3, quiz 55: each once
    assert (
        store.tables["learning_events"][("s1", "c")][col("learning_events", "batch_version")] == 3
    )

    # and once everything is saved, a further replay changes nothing
    final = EventProcessor(store).process(batch(lost, 10), now=LATER, version=4)
    assert (final.counted, final.duplicates) == (0, 3) and no_rows(final)


def test_crash_between_two_students_states() -> None:
    """Batch v2 wrote all events and s1's state, not s2's: only s2's events are replayed."""
    store = MemoryStore()
    events = [
        lesson("s1-old", OLD),
        lesson("s2-old", OLD, student="s2"),
        lesson("s1-hot", HOT, "l2"),
        lesson("s2-hot", HOT, "l2", student="s2"),
    ]
    result = EventProcessor(store).process(batch(events), now=NOW, version=2)
    store.write(result, tables=("learning_events",))
    state_rows = result.tables["student_state"]
    store.write(BatchResult(tables={"student_state": [r for r in state_rows if r[0] == "s1"]}))

    replay = EventProcessor(store).process(batch(events), now=NOW, version=3)
    assert sorted(counted_ids(replay)) == ["s2-hot", "s2-old"]
    assert replay.duplicates == 2


# ------------------------------------------------------------------ cache eviction


BATCHES = [
    [lesson("a1", HOT), lesson("b1", HOT, student="s2")],
    [quiz("c1", HOT, 55, student="s3"), lesson("a2", "2026-11-24T10:00:00Z", "l1")],  # earlier
    [lesson("b1", HOT, student="s2"), lesson("old-b", OLD, "l7", student="s2")],
    [lesson("a1", HOT), quiz("c2", "2026-11-25T12:00:00Z", 90, student="s3")],
    [
        lesson("old-b", OLD, "l7", student="s2"),
        quiz("c0", "2026-11-25T08:00:00Z", 95, student="s3"),
    ],
    [
        lesson("a3", HOT, "l3"),
        lesson("b2", HOT, "l2", student="s2"),
        lesson("x", OLD, student="s4"),
    ],
]


def run_batches(cache_students: int) -> tuple[list[BatchResult], MemoryStore, EventProcessor]:
    store = MemoryStore()
    processor = EventProcessor(store, cache_students=cache_students)
    results = []
    offset = 0
    for version, payloads in enumerate(BATCHES, start=1):
        result = processor.process(batch(payloads, offset), now=NOW, version=version)
        offset += len(payloads)
        store.write(result)
        processor.evict()
        results.append(result)
    return results, store, processor


def test_cache_eviction_reloads_states_with_identical_results() -> None:
    small, small_store, small_processor = run_batches(cache_students=1)
    large, large_store, large_processor = run_batches(cache_students=1000)
    assert len(small_processor.states) == 1 and len(large_processor.states) == 4
    assert len(small_store.loads) > len(large_store.loads)  # evicted states were reloaded
    for got, expected in zip(small, large, strict=True):
        assert got.tables == expected.tables
        assert (got.counted, got.duplicates) == (expected.counted, expected.duplicates)
    assert small_store.tables == large_store.tables
    # the expectation, by hand: duplicates a1 and b1 (hot), old-b (old) are dropped
    assert [r.duplicates for r in small] == [0, 0, 1, 1, 1, 0]
    assert small_store.summary("s1")["total_points"] == 10 + 10  # l1 once, l3
    assert small_store.summary("s2")["total_points"] == 10 + 10 + 10  # l1, l7, l2
    assert small_store.summary("s3")["total_points"] == 9  # quizzes 55, 90, 95 -> best 95
    assert small_store.summary("s3")["events_counted"] == 3


def test_evict_drops_least_recently_used_first() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, cache_students=2)
    for version, student in enumerate(["s1", "s2", "s3", "s1"], start=1):
        store.write(
            processor.process(
                batch([lesson(f"e-{student}-{version}", HOT, student=student)]), NOW, version
            )
        )
    assert processor.evict() == 1
    assert list(processor.states) == ["s3", "s1"]  # s2 was the least recently used


def test_forget_after_a_failed_write_gives_the_same_rows() -> None:
    store = MemoryStore()
    processor = EventProcessor(store)
    store.write(processor.process(batch([lesson("a", HOT)]), NOW, 1))
    failed = processor.process(batch([lesson("b", HOT, "l2"), lesson("a", HOT)], 1), NOW, 2)
    processor.forget(failed.students)  # the write failed: nothing of batch 2 is stored
    retried = processor.process(batch([lesson("b", HOT, "l2"), lesson("a", HOT)], 1), NOW, 2)
    assert retried.tables == failed.tables
    assert (retried.counted, retried.duplicates) == (1, 1)


# ---------------------------------------------------------------------- row versions


@pytest.mark.parametrize("version", [1, 7, 1_764_000_000_000_000_000])
def test_rows_carry_the_version_given(version: int) -> None:
    store = MemoryStore()
    result = EventProcessor(store).process(
        batch([lesson("e1", HOT, progress=10), quiz("e2", HOT, 50)], partition=4),
        now=NOW,
        version=version,
    )
    for table, (_, version_col) in KEYS.items():
        table_rows = result.tables[table]
        assert table_rows, table
        assert {r[col(table, version_col)] for r in table_rows} == {version}, table
    for table, time_col in [
        ("learning_events", "ingested_at"),
        ("student_courses", "updated_at"),
        ("student_summary", "updated_at"),
    ]:
        assert {r[col(table, time_col)] for r in result.tables[table]} == {NOW}
    state_row = result.tables["student_state"][0]
    assert state_row[col("student_state", "kafka_partition")] == 4
    blob = orjson.loads(state_row[col("student_state", "state")])
    assert (blob["v"], blob["p"]) == (version, 4)


def test_rows_of_a_batch_describe_the_students_state() -> None:
    """The rows of one batch, checked field by field against values worked out by hand."""
    store = MemoryStore()
    result = EventProcessor(store).process(
        batch(
            [
                lesson("e1", "2026-11-25T23:30:00Z", timezone="Asia/Tokyo", progress=12.5),
                quiz("e2", "2026-11-25T10:00:00Z", 85),
            ]
        ),
        now=NOW,
        version=9,
    )
    store.write(result)
    daily = {
        k[1]: dict(zip(rows.COLUMNS["student_course_daily"], v, strict=True))
        for k, v in store.tables["student_course_daily"].items()
    }
    assert set(daily) == {dt.date(2026, 11, 26), dt.date(2026, 11, 25)}
    assert daily[dt.date(2026, 11, 26)]["points"] == 10  # Tokyo date of the completion
    assert daily[dt.date(2026, 11, 26)]["minutes"] == 10
    assert daily[dt.date(2026, 11, 25)]["points"] == 8
    assert daily[dt.date(2026, 11, 25)]["quizzes_completed"] == 1
    summary = store.summary("s1")
    assert (summary["total_points"], summary["level"]) == (18, 1)
    assert summary["last_event_tz"] == "Asia/Tokyo"
    assert summary["active_days"] == [dt.date(2026, 11, 26)]
    course = dict(
        zip(
            rows.COLUMNS["student_courses"],
            store.tables["student_courses"][("s1", "c1")],
            strict=True,
        )
    )
    assert (course["enrolled"], course["completed_lessons"], course["reported_progress"]) == (
        1,
        1,
        12.5,
    )
    event = dict(
        zip(
            rows.COLUMNS["learning_events"],
            store.tables["learning_events"][("s1", "e1")],
            strict=True,
        )
    )
    assert event["local_date"] == dt.date(2026, 11, 26) and event["timezone"] == "Asia/Tokyo"
    assert event["occurred_at"] == dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC)


# ------------------------------------------------------ batches, restarts and crashes

STREAM = [
    lesson("s1-a", "2026-11-20T10:00:00Z"),
    lesson("s1-b", "2026-11-18T10:00:00Z"),  # earlier completion of l1
    lesson("s1-c", "2026-10-05T10:00:00Z", "l2"),  # old
    quiz("s1-q1", "2026-11-21T10:00:00Z", 55),
    quiz("s1-q2", "2026-11-22T10:00:00Z", 85),
    quiz("s1-q0", "2026-10-06T10:00:00Z", 90),  # old, earlier and higher
    {**lesson("s1-u", "2026-11-23T10:00:00Z"), "type": "unenrolled", "courseId": "c2"},
    lesson("s2-a", "2026-11-25T23:30:00Z", timezone="Asia/Tokyo"),
    lesson("s2-b", "2026-10-01T10:00:00Z", "l2", progress=40),
    lesson("s2-c", "2026-11-24T10:00:00Z", "l3", completed=False, progress=20),
    quiz("s3-q", "2026-11-25T10:00:00Z", 100, student="s3"),
    quiz("s3-q-old", "2026-09-25T10:00:00Z", 60, student="s3"),
]


def final_tables(store: MemoryStore) -> dict[str, Any]:
    """The stored aggregates without the columns that name a flush (version, times, offsets)."""
    skip = {"version", "updated_at"}
    view: dict[str, Any] = {"learning_events": sorted(store.tables["learning_events"])}
    for table in ("student_courses", "student_course_daily", "student_summary"):
        names = rows.COLUMNS[table]
        view[table] = {
            key: [v for n, v in zip(names, row, strict=True) if n not in skip]
            for key, row in store.tables[table].items()
        }
    return view


def test_any_batching_restarts_and_crashes_give_the_same_tables() -> None:
    """Shuffled batches with re-sends, restarts, evictions and crashes: same stored result."""
    once = MemoryStore()
    ordered = sorted(STREAM, key=lambda p: p["occurredAt"])
    once.write(EventProcessor(once).process(batch(ordered), now=NOW, version=1))
    expected = final_tables(once)
    assert expected["student_summary"][("s1",)][0:2] == ["s1", 10 + 10 + 9]  # l1, l2, quiz 90
    assert expected["student_summary"][("s3",)][0:2] == ["s3", 10]

    rng = random.Random(1126)
    for run in range(40):
        store = MemoryStore()
        processor = EventProcessor(store, cache_students=rng.choice([1, 2, 1000]))
        pending = STREAM + rng.sample(STREAM, 4)  # some events are delivered twice
        rng.shuffle(pending)
        version = 0
        while pending:
            size = rng.randint(1, 4)
            chunk, pending = pending[:size], pending[size:]
            version += 1
            result = processor.process(batch(chunk), now=NOW, version=version)
            if rng.random() < 0.25:  # crash after learning_events, before the states
                store.write(result, tables=("learning_events",))
                processor = EventProcessor(store, cache_students=processor.cache_students)
                version += 1
                result = processor.process(batch(chunk), now=NOW, version=version)
            store.write(result)
            if rng.random() < 0.25:  # clean restart
                processor = EventProcessor(store, cache_students=processor.cache_students)
            processor.evict()
        assert final_tables(store) == expected, f"run {run}"


@pytest.mark.parametrize(
    "key", [None, b"someone-else", b""], ids=["no-key", "other-key", "empty-key"]
)
def test_message_key_must_be_the_student_id(key: bytes | None) -> None:
    """A message keyed otherwise would land on a worker that does not own the student."""
    event = lesson("k1", "2026-11-20T10:00:00Z")
    processor = EventProcessor(MemoryStore())
    result = processor.process([Message(TOPIC, 0, 5, key, orjson.dumps(event))], now=NOW, version=1)
    assert result.counted == 0
    assert [(d.field, d.offset) for d in result.dead_letters] == [("key", 5)]
    assert "studentId" in result.dead_letters[0].reason
