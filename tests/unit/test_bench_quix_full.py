"""Unit tests of the full quixstreams peer's own logic (``bench.quix_rows``), no broker.

quixstreams' keyed state is stood in for by a dict per message key that keeps
values as JSON, as quixstreams' RocksDB store does (orjson: tuples come back as
lists). The peer's rows are compared with the worker's ``EventProcessor`` on the
same messages, batch by batch, with the same clock and versions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from bench.processor_micro import EmptyStore
from bench.quix_rows import (
    SEEN_PREFIX,
    STATE_KEY,
    Outcome,
    batch_tables,
    merge_students,
    process_message,
)
from streams.processor import KEY_MISMATCH, EventProcessor, Message
from streams.student_state import StudentState

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
TOPIC = "learning-events"


class JsonState:
    """One message key's part of quixstreams' store: values kept as JSON bytes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        raw = self.data.get(key)
        return default if raw is None else orjson.loads(raw)

    def set(self, key: Any, value: Any) -> None:
        self.data[key] = orjson.dumps(value)


def event(eid: str, student: str, kind: str, when: str, **fields: Any) -> dict[str, Any]:
    return {"eventId": eid, "type": kind, "studentId": student, "occurredAt": when, **fields}


def lesson(eid: str, student: str, when: str, course: str = "c1", lesson_id: str = "l1",
           completed: bool = True, minutes: float = 10) -> dict[str, Any]:  # fmt: skip
    return event(eid, student, "lesson_progress", when, courseId=course, lessonId=lesson_id,
                 completed=completed, timeSpent=minutes)  # fmt: skip


def quiz(eid: str, student: str, when: str, score: float, course: str = "c1") -> dict[str, Any]:
    return event(eid, student, "quiz_completed", when, courseId=course, quizId="q1",
                 score=score, timeSpent=5)  # fmt: skip


def message(payload: Any, offset: int, key: bytes | None = None, partition: int = 0) -> Message:
    if key is None and isinstance(payload, dict):
        key = payload["studentId"].encode()
    value = payload if payload is None or isinstance(payload, bytes) else orjson.dumps(payload)
    return Message(TOPIC, partition, offset, key, value)


def peer_step(states: dict[bytes | None, JsonState], m: Message) -> Outcome:
    state = states.setdefault(m.key, JsonState())  # quixstreams: state prefixed by the key
    return process_message(m.value, m.key, m.topic, m.partition, m.offset, state, NOW)


def sorted_tables(tables: dict[str, list[list[Any]]]) -> dict[str, list[str]]:
    """Rows as comparable text, in a fixed order (row order within a table has no meaning)."""
    return {table: sorted(orjson.dumps(row, default=str).decode() for row in table_rows)
            for table, table_rows in tables.items() if table_rows}  # fmt: skip


def test_counted_duplicate_and_invalid_messages() -> None:
    states: dict[bytes | None, JsonState] = {}
    first = lesson("e1", "s1", "2026-11-25T10:00:00Z")
    counted = peer_step(states, message(first, 0))
    assert counted.counted and counted.parsed is not None and counted.letter is None
    stored = states[b"s1"]
    assert orjson.loads(stored.data[SEEN_PREFIX + "e1"]) == 1
    assert StudentState.from_dict("s1", stored.get(STATE_KEY)).events_counted == 1
    before = dict(stored.data)

    again = peer_step(states, message(first, 1))  # the same eventId: counted once
    assert not again.counted and again.letter is None
    assert stored.data == before

    wrong_key = peer_step(states, message(lesson("e2", "s1", "2026-11-25T11:00:00Z"), 2, b"s2"))
    assert wrong_key.letter is not None and wrong_key.letter.reason == KEY_MISMATCH
    assert wrong_key.letter.key == "s2" and wrong_key.letter.offset == 2
    assert SEEN_PREFIX + "e2" not in states[b"s2"].data

    broken = peer_step(states, message(b"{not json", 3, b"s1"))
    assert broken.letter is not None
    empty = peer_step(states, message(None, 4, b"s1"))
    assert empty.letter is not None
    assert stored.data == before  # invalid messages change no state

    built = batch_tables([counted, again, wrong_key, broken, empty], NOW, 7)
    assert (built.messages, built.counted, built.duplicates, len(built.letters)) == (5, 1, 1, 3)
    assert len(built.tables["dead_letters"]) == 3
    assert len(built.tables["learning_events"]) == 1
    assert built.tables["student_summary"][0][1] == 10  # total points: one first completion


def test_the_state_does_not_keep_event_ids_twice() -> None:
    states: dict[bytes | None, JsonState] = {}
    peer_step(states, message(lesson("e1", "s1", "2026-11-25T10:00:00Z"), 0))
    assert states[b"s1"].get(STATE_KEY)["i"] == {}  # dedup is the id: keys' job


def outcome_with(student: str, courses: set[str], days: set[tuple[int, str]]) -> Outcome:
    state = StudentState(student_id=student)
    state.dirty_courses, state.dirty_days = set(courses), set(days)
    return Outcome(0, 0, state=state)


def test_merge_students_unites_the_dirty_sets_of_each_students_messages() -> None:
    a1 = outcome_with("a", {"c1"}, {(1, "c1")})
    b1 = outcome_with("b", {"c9"}, {(5, "c9")})
    a2 = outcome_with("a", {"c2"}, {(2, "c2")})
    a3 = Outcome(0, 0, state=StudentState(student_id="a"))  # dirty sets None
    merged = merge_students([a1, b1, Outcome(0, 0), a2, a3])
    assert list(merged) == ["a", "b"]
    assert merged["a"] is a3.state  # the latest state of the batch
    assert merged["a"].dirty_courses == {"c1", "c2"}
    assert merged["a"].dirty_days == {(1, "c1"), (2, "c2")}
    assert merged["b"] is b1.state and merged["b"].dirty_courses == {"c9"}
    assert a1.state is not None and a1.state.dirty_courses == {"c1"}  # earlier ones keep theirs
    assert a2.state is not None and a2.state.dirty_days == {(2, "c2")}


def test_the_peer_writes_the_rows_the_worker_writes() -> None:
    day1, day2 = "2026-11-24T10:00:00Z", "2026-11-25T23:30:00-05:00"
    batches = [
        [
            message(event("e0", "s1", "enrolled", "2026-11-24T09:00:00Z", courseId="c1"), 0),
            message(lesson("e1", "s1", day1), 1),
            message(lesson("e2", "s1", day2, course="c2", lesson_id="l7"), 2),
            message(quiz("e3", "s2", day1, 55), 3),
            message(lesson("e1", "s1", day1), 4),  # duplicate
            message(quiz("e4", "s2", day2, 81), 5),
            message(lesson("e5", "s1", day1, completed=False, minutes=3.25), 6),
            message(lesson("e6", "s3", day1), 7, key=b"s1"),  # key mismatch
        ],
        [
            message(quiz("e7", "s2", "2026-11-23T08:00:00Z", 90), 8),  # late: beats both
            message(lesson("e8", "s1", "2026-11-23T08:00:00Z"), 9),  # earlier completion of l1
            message(lesson("e2", "s1", day2, course="c2", lesson_id="l7"), 10),  # duplicate
            message(event("e9", "s1", "unenrolled", day2, courseId="c2"), 11),
            message(b"[]", 12, key=b"s1"),
        ],
    ]
    worker = EventProcessor(EmptyStore())
    states: dict[bytes | None, JsonState] = {}
    for version, batch in enumerate(batches, start=100):
        result = worker.process(batch, NOW, version)
        built = batch_tables([peer_step(states, m) for m in batch], NOW, version)
        assert sorted_tables(built.tables) == sorted_tables(result.tables)
        assert (built.counted, built.duplicates) == (result.counted, result.duplicates)
        assert len(built.letters) == len(result.dead_letters)
    final = {sid: StudentState.from_dict(sid, states[sid.encode()].get(STATE_KEY))
             for sid in ("s1", "s2")}  # fmt: skip
    for sid, state in final.items():
        assert state.total_points() == worker.cache.states[sid].total_points()
