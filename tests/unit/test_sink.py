"""ClickHouseSink against the embedded engine: rows written, read back, looked up.

The processor's rows go through the real sink into real tables; what comes back
(counts, the replayed events, the counted look-up) must match what was processed.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from infra import clickhouse
from streams import rows
from streams import sink as sink_module
from streams.processor import EventProcessor, Message
from streams.row_encoding import ARROW_SCHEMAS
from streams.sink import ClickHouseSink

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)


def _messages(student: str) -> list[Message]:
    events = [
        {"eventId": f"{student}-1", "type": "lesson_progress", "studentId": student,
         "courseId": "c1", "lessonId": "l1", "completed": True, "timeSpent": 12.5,
         "occurredAt": "2026-11-25T10:00:00+01:00", "timezone": "Europe/Paris"},
        {"eventId": f"{student}-2", "type": "quiz_completed", "studentId": student,
         "courseId": "c1", "quizId": "q1", "score": 85, "occurredAt": "2026-10-01T10:00:00Z"},
    ]  # fmt: skip
    return [
        Message("learning-events", 0, i, student.encode(), orjson.dumps(e))
        for i, e in enumerate(events)
    ]


@pytest.mark.parametrize("embedded", [False, True], ids=["as-to-a-server", "embedded"])
def test_written_rows_are_read_back(ch_client: Client, unique_id: str, embedded: bool) -> None:
    student = f"sink-{unique_id}-{embedded}"
    sink = ClickHouseSink(ch_client, embedded_engine=embedded)
    result = EventProcessor(sink).process(_messages(student), NOW, 7)
    written = sink.write(result.tables)
    assert written == sum(len(rows) for rows in result.tables.values()) > 0
    count = ch_client.command(
        "SELECT count() FROM learning_events WHERE student_id = {s:String}",
        parameters={"s": student},
    )
    assert count == 2
    points = ch_client.command(
        "SELECT total_points FROM student_summary FINAL WHERE student_id = {s:String}",
        parameters={"s": student},
    )
    assert points == 10 + 8
    keys = [(student, f"{student}-1"), (student, f"{student}-2"), (student, "never-sent")]
    assert sink.counted(keys) == set(keys[:2])
    replayed = sink.counted_since({student: 0})
    assert sorted(p.event_id for p in replayed) == [f"{student}-1", f"{student}-2"]
    assert sink.counted_since({student: 7}) == []


@pytest.mark.parametrize("embedded", [False, True], ids=["as-to-a-server", "embedded"])
def test_awkward_text_survives_the_insert(
    ch_client: Client, unique_id: str, embedded: bool
) -> None:
    """Quotes, backslashes, newlines, braces and non-ASCII text arrive unchanged."""
    awkward = 'he said "hi";\n\\ {x} \u00e9\u4e2d\U0001f600 \\N ;'
    key = f"dlq-{unique_id}-{embedded}"
    row = [NOW, "learning-events", 0, 1, key, awkward, None, awkward + "\n;"]
    ClickHouseSink(ch_client, embedded_engine=embedded).write({"dead_letters": [row]})
    stored = ch_client.query(
        "SELECT reason, payload FROM dead_letters WHERE message_key = {k:String}",
        parameters={"k": key},
    ).result_rows
    assert stored == [(awkward, awkward + "\n;")]


@pytest.mark.parametrize("embedded", [False, True], ids=["as-to-a-server", "embedded"])
def test_times_keep_their_milliseconds_and_json_columns_their_text(
    ch_client: Client, unique_id: str, embedded: bool
) -> None:
    """Rows hold times as epoch seconds and JSON columns as text written raw into the insert."""
    student = f"times-{unique_id}-{embedded}"
    times_ms = [1_795_666_864_580, 1_795_666_864_001, 1_795_666_864_999, -86_400_001, 0, 1]
    course = [
        student, "c1", 1, rows.seconds(times_ms[0]), 3, [rows.seconds(t) for t in times_ms],
        None, None, 1.5, rows.seconds(times_ms[2]), rows.seconds(times_ms[1]), 1,
    ]  # fmt: skip
    state_text = orjson.dumps({"c": {"x": [1, 'a "quoted" \\ é']}, "i": {}, "r": [[1, None]]})
    sink = ClickHouseSink(ch_client, embedded_engine=embedded)
    sink.write({
        "student_courses": [course],
        "student_state": [[student, 3, state_text.decode(), 1]],
        "student_dashboard": [[student, '[[1,"x"],{"k":null},"\\u00e9"]', 1]],
    })  # fmt: skip
    (stored,) = ch_client.query(
        "SELECT toUnixTimestamp64Milli(first_enrolled_at), "
        "arrayMap(t -> toUnixTimestamp64Milli(t), completion_times), "
        "toUnixTimestamp64Milli(last_activity_at), toUnixTimestamp64Milli(updated_at) "
        "FROM student_courses WHERE student_id = {s:String}",
        parameters={"s": student},
    ).result_rows
    assert stored == (times_ms[0], times_ms, times_ms[2], times_ms[1])
    texts = ch_client.query(
        "SELECT state, payload FROM student_state, student_dashboard "
        "WHERE student_state.student_id = {s:String} AND student_dashboard.student_id = {s:String}",
        parameters={"s": student},
    ).result_rows
    assert texts == [(state_text.decode(), '[[1,"x"],{"k":null},"\\u00e9"]')]


def test_known_students_are_those_with_a_summary_or_a_snapshot(
    ch_client: Client, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in several slices; a student with only a snapshot is known, one never written is not."""
    monkeypatch.setattr(sink_module, "KNOWN_CHUNK", 2)
    sink = ClickHouseSink(ch_client, embedded_engine=True)
    written = [f"known-{unique_id}-{i}" for i in range(5)]
    processor = EventProcessor(sink)
    sink.write(processor.process([m for s in written for m in _messages(s)], NOW, 8).tables)
    snapshot_only = f"snapshot-{unique_id}"
    processor.process(_messages(snapshot_only), NOW, 9)  # its rows are not written ...
    snapshot = [row for row in processor.cache.snapshot_rows(10) if row[0] == snapshot_only]
    sink.write({"student_state": snapshot})  # ... its snapshot is
    known = sink.known_students()
    assert all(known.may_know(s) for s in [*written, snapshot_only])
    never = [f"never-{unique_id}-{i}" for i in range(200)]
    assert sum(known.may_know(s) for s in never) < 10  # 1 % false positives


def _engine_resident_bytes(client: Client) -> int:
    stats = str(client.command("SELECT * FROM system.jemalloc_stats")).replace("\\n", "\n")
    line = next(ln for ln in stats.splitlines() if ln.startswith("Allocated:"))
    return int(line.split("resident: ")[1].split(",")[0])


def test_release_engine_memory_hands_freed_pages_back(ch_client: Client) -> None:
    """A large aggregation leaves freed pages in the engine's allocator; a purge returns them."""
    ch_client.command("SELECT count() FROM numbers(20000000) GROUP BY number % 2000000 FORMAT Null")
    before = _engine_resident_bytes(ch_client)
    ClickHouseSink(ch_client, embedded_engine=True).release_engine_memory()
    after = _engine_resident_bytes(ch_client)
    assert after < before - 20 * 2**20, (before, after)


def test_arrow_and_json_inserts_store_the_same_rows(
    ch_client: Client, empty_db: Client, unique_id: str
) -> None:
    """The embedded engine's Arrow inserts store what the JSON lines a server gets store."""
    clickhouse.migrate(empty_db)
    student = f"both-{unique_id}"
    events = [
        {"eventId": "e1", "type": "enrolled", "courseId": "c2",
         "occurredAt": "2026-11-20T08:00:00Z"},
        {"eventId": "e2", "type": "lesson_progress", "courseId": "c1", "moduleId": "m1",
         "lessonId": "l1", "completed": True, "timeSpent": 12.5, "progress": 25,
         "occurredAt": "2026-11-25T23:30:00.123+01:00", "timezone": "Europe/Paris"},
        {"eventId": "e3", "type": "lesson_progress", "courseId": "c1", "lessonId": "l2",
         "completed": False, "timeSpent": 3.25, "occurredAt": "2026-11-26T01:00:00.007Z"},
        {"eventId": "e4", "type": "quiz_completed", "courseId": "c1", "quizId": "q1",
         "score": 91.5, "timeSpent": 7, "occurredAt": "2026-10-01T10:00:00.999Z"},
        {"eventId": "e5", "type": "unenrolled", "courseId": "c2",
         "occurredAt": "2026-11-21T08:00:00Z"},
    ]  # fmt: skip
    messages = [
        Message(
            "learning-events", 3, i, student.encode(), orjson.dumps({**e, "studentId": student})
        )
        for i, e in enumerate(events)
    ]
    processor = EventProcessor(ClickHouseSink(ch_client))
    tables = processor.process(messages, NOW, 7).tables
    tables["student_state"] = processor.cache.snapshot_rows(8)
    ClickHouseSink(ch_client).write(tables)  # JSON lines, as to a server
    ClickHouseSink(empty_db, embedded_engine=True).write(tables)  # Arrow columns
    for table in ARROW_SCHEMAS:
        query = f"SELECT * FROM {table} WHERE student_id = {{s:String}} ORDER BY ALL"
        as_json = ch_client.query(query, parameters={"s": student}).result_rows
        as_arrow = empty_db.query(query, parameters={"s": student}).result_rows
        assert as_json, table
        assert as_arrow == as_json, table


def test_arrow_schemas_name_the_columns_of_their_tables() -> None:
    for table, schema in ARROW_SCHEMAS.items():
        assert schema.names == rows.COLUMNS[table], table
