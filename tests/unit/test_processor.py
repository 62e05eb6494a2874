"""Unit tests of ``EventProcessor``: batches in, rows and dead letters out (no I/O).

The ``StateStore`` is implemented here in memory, as ClickHouse would behave:
rows replace older rows of the same key when their version is not lower
(ReplacingMergeTree), ``load_states`` reads the ``student_state`` snapshots,
``counted_since`` replays ``learning_events`` rows written after a snapshot (in
no particular order, as ClickHouse gives them) and ``counted`` reads
``learning_events`` (student, event) -> ``batch_version``. Tests write to it
only the rows a scenario says were written, which simulates restarts and
crashes at any point of a flush (``WRITE_ORDER``) or of a snapshot. Clock fixed.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from schemas.dead_letter import PAYLOAD_LIMIT
from schemas.events import ParsedEvent
from streams import known_students, rows
from streams.known_students import KnownStudents
from streams.processor import BatchResult, EventProcessor, Message
from streams.sink import WRITE_ORDER, replayed_event
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
    "student_dashboard": (["student_id"], "version"),
}
AGGREGATES = ("student_courses", "student_course_daily", "student_summary", "student_dashboard")
BATCH_TABLES = ("learning_events", *AGGREGATES)  # what ``process`` returns for counted events


def col(table: str, name: str) -> int:
    return rows.COLUMNS[table].index(name)


class MemoryStore:
    """ClickHouse as the processor sees it, in dicts."""

    def __init__(self, seed: int = 0) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], list[Any]]] = {t: {} for t in KEYS}
        self.dead_letters: list[list[Any]] = []  # a plain MergeTree: rows are appended
        self.loads: list[list[str]] = []
        self.replays: list[tuple[dict[str, int], list[str]]] = []  # (versions, replayed ids)
        self.lookups: list[list[tuple[str, str]]] = []
        self.known_reads = 0
        self.rng = random.Random(seed)

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

    def counted_since(self, versions: dict[str, int]) -> list[ParsedEvent]:
        events = self.tables["learning_events"]
        names = rows.COLUMNS["learning_events"]
        replay = []
        for row in events.values():
            r = dict(zip(names, row, strict=True))
            if r["student_id"] in versions and r["batch_version"] > versions[r["student_id"]]:
                occurred_ms = round(r["occurred_at"] * 1000)  # rows hold epoch seconds
                replay.append(replayed_event((
                    r["event_id"], r["student_id"], r["type"], r["course_id"], r["module_id"],
                    r["lesson_id"], r["quiz_id"], occurred_ms, r["local_date"], r["timezone"],
                    r["completed"], r["time_spent_minutes"], r["progress"], r["score"],
                    r["batch_version"],
                )))  # fmt: skip
        self.rng.shuffle(replay)  # ClickHouse returns rows in no particular order
        self.replays.append((dict(versions), sorted(p.event_id for p in replay)))
        return replay

    def counted(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        self.lookups.append(list(keys))
        return {key for key in keys if key in self.tables["learning_events"]}

    def known_students(self) -> KnownStudents:
        self.known_reads += 1
        stored = {
            key[0] for table in ("student_summary", "student_state") for key in self.tables[table]
        }
        return KnownStudents.of(stored, len(stored))

    # -- what a sink would do
    def insert(self, table: str, table_rows: Iterable[list[Any]]) -> None:
        table_rows = list(table_rows)
        if not table_rows:
            return
        if table == "dead_letters":
            self.dead_letters.extend(table_rows)
            return
        key_cols, version_col = KEYS[table]
        key_idx = [col(table, c) for c in key_cols]
        version_idx = col(table, version_col)
        current = self.tables[table]
        for row in table_rows:
            key = tuple(row[i] for i in key_idx)
            if key not in current or current[key][version_idx] <= row[version_idx]:
                current[key] = row

    def write(self, result: BatchResult, tables: Iterable[str] = WRITE_ORDER) -> None:
        """Insert the batch's rows of ``tables`` (all of them: a complete flush)."""
        for table in tables:
            self.insert(table, result.tables.get(table, []))

    def snapshot(self, processor: EventProcessor, version: int) -> list[rows.Row]:
        """Take a snapshot between batches, as the worker does, and write it."""
        snapshot = processor.cache.snapshot_rows(version)
        self.insert("student_state", snapshot)
        return snapshot

    def summary(self, student_id: str) -> dict[str, Any]:
        row = self.tables["student_summary"][(student_id,)]
        return dict(zip(rows.COLUMNS["student_summary"], row, strict=True))


def flush_sequence(result: BatchResult) -> list[tuple[str, list[Any]]]:
    """The rows of a batch in the order the sink inserts them."""
    return [(table, row) for table in WRITE_ORDER for row in result.tables.get(table, [])]


def canonical(state: StudentState) -> dict[str, Any]:
    """``to_dict()`` of a state with its list of day facts sorted (their order has no meaning:
    ``from_dict`` rebuilds a dict from it); nothing left out."""
    data = state.to_dict()
    data["d"] = sorted(data["d"])
    return data


def snapshot_view(snapshot: list[rows.Row]) -> dict[str, Any]:
    """Snapshot rows by student, their states as ``canonical`` (comparable) dicts."""
    names = rows.COLUMNS["student_state"]
    view = {}
    for row in snapshot:
        r = dict(zip(names, row, strict=True))
        data = orjson.loads(r["state"])
        data["d"] = sorted(data["d"])
        view[r["student_id"]] = (r["kafka_partition"], r["version"], data)
    return view


def without_versions(tables: dict[str, list[rows.Row]]) -> dict[str, list[rows.Row]]:
    """Rows with their version column left out (to compare two flushes of the same facts)."""
    view = {}
    for table, table_rows in tables.items():
        skip = col(table, KEYS[table][1]) if table in KEYS else None
        view[table] = [[v for i, v in enumerate(row) if i != skip] for row in table_rows]
    return view


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


HOT_EVENTS = [lesson("e1", HOT), quiz("e2", HOT, 85), lesson("e3", "2026-11-20T10:00:00Z", "l2")]


@pytest.mark.parametrize(
    ("saved", "replayed_since", "replayed"),
    [
        pytest.param("learning_events", 0, ["e1", "e2", "e3"], id="learning-events-no-snapshot"),
        pytest.param("both", 2, [], id="snapshot-and-nothing-after-it"),
        pytest.param("snapshot", 2, [], id="snapshot-alone"),
    ],
)
def test_restart_hot_events_are_duplicates(
    saved: str, replayed_since: int, replayed: list[str]
) -> None:
    """Recent events are recognised by the ids of the rebuilt state (no lookup needed):
    replayed from learning_events when there is no snapshot, kept in the snapshot."""
    store = MemoryStore()
    processor = EventProcessor(store)
    result = processor.process(batch(HOT_EVENTS), now=NOW, version=1)
    assert result.counted == 3
    assert "student_state" not in result.tables  # states are saved by snapshots only
    if saved != "snapshot":
        store.write(result)
    if saved != "learning_events":
        # "snapshot": learning_events deliberately not written, so only the snapshot can tell
        assert len(store.snapshot(processor, version=2)) == 1

    restarted = EventProcessor(store)  # empty cache
    again = restarted.process(batch(HOT_EVENTS, 100), now=NOW, version=3)
    assert (again.counted, again.duplicates) == (0, 3)
    assert no_rows(again) and again.students == []
    assert store.loads[-1] == ["s1"]
    assert store.replays[-1] == ({"s1": replayed_since}, replayed)
    assert store.lookups == []  # hot events need no lookup in learning_events


@pytest.mark.parametrize("with_snapshot", [True, False], ids=["snapshot", "no-snapshot"])
def test_restart_old_events_recognised_through_learning_events(with_snapshot: bool) -> None:
    store = MemoryStore()
    events = [
        lesson("old-1", OLD),
        quiz("old-2", "2026-10-02T10:00:00Z", 85),
        lesson("hot", HOT, "l2"),
    ]
    processor = EventProcessor(store)
    result = processor.process(batch(events), now=NOW, version=1)
    assert result.counted == 3
    store.write(result)
    if with_snapshot:
        (snapshot,) = store.snapshot(processor, version=2)
        saved = orjson.loads(snapshot[col("student_state", "state")])
        assert set(saved["i"]) == {"hot"}  # old ids are not kept in the snapshot
        assert saved["n"] == 3

    restarted = EventProcessor(store)
    again = restarted.process(batch(events, 100), now=LATER, version=3)
    assert (again.counted, again.duplicates) == (0, 3)
    assert no_rows(again)
    if with_snapshot:  # nothing to replay: only the lookup in learning_events knows them
        assert store.replays[-1] == ({"s1": 2}, [])
        assert sorted(store.lookups[-1]) == [("s1", "old-1"), ("s1", "old-2")]
    else:  # the replay of learning_events applied them: they are known without a lookup
        assert store.replays[-1] == ({"s1": 0}, ["hot", "old-1", "old-2"])
    assert store.summary("s1")["events_counted"] == 3
    assert store.summary("s1")["total_points"] == 10 + 8 + 10


@pytest.mark.parametrize("with_snapshot", [True, False], ids=["snapshot", "no-snapshot"])
def test_without_the_learning_events_record_old_events_would_count_again(
    with_snapshot: bool,
) -> None:
    """Control of the test above: the record in learning_events is what stops them
    (the snapshot does not keep the ids of old events)."""
    store = MemoryStore()
    events = [lesson("old-1", OLD)]
    processor = EventProcessor(store)
    store.write(processor.process(batch(events), NOW, 1), tables=AGGREGATES)
    if with_snapshot:
        store.snapshot(processor, version=2)
    again = EventProcessor(store).process(batch(events), NOW, 3)
    assert again.counted == 1


# --------------------------------------------------------------------------- crashes

LOST = [lesson("c", "2026-10-03T10:00:00Z", "l3"), quiz("d", HOT, 55), lesson("a", OLD)]


def first_batch_and_snapshot(store: MemoryStore, with_snapshot: bool) -> EventProcessor:
    """Batch v1 (a: old, b: hot) written and acknowledged; a snapshot v2 if asked."""
    processor = EventProcessor(store)
    first = processor.process(batch([lesson("a", OLD), lesson("b", HOT, "l2")]), NOW, 1)
    assert first.counted == 2
    store.write(first)
    if with_snapshot:
        store.snapshot(processor, version=2)
    return processor


@pytest.mark.parametrize("with_snapshot", [True, False], ids=["older-snapshot", "no-snapshot"])
def test_crash_after_learning_events_counts_the_resent_events_zero_times(
    with_snapshot: bool,
) -> None:
    """The whole batch was written (learning_events last), the worker died before acking."""
    store = MemoryStore()
    crashed = first_batch_and_snapshot(store, with_snapshot)
    result = crashed.process(batch(LOST, 10), now=NOW, version=3)
    assert (result.counted, result.duplicates) == (2, 1)
    store.write(result)  # then the worker dies: no ack, no snapshot

    restarted = EventProcessor(store)
    replay = restarted.process(batch(LOST, 10), now=NOW, version=4)
    assert (replay.counted, replay.duplicates) == (0, 3)
    assert no_rows(replay) and replay.students == []
    since = 2 if with_snapshot else 0
    replayed = ["c", "d"] if with_snapshot else ["a", "b", "c", "d"]
    assert store.replays[-1] == ({"s1": since}, replayed)
    summary = store.summary("s1")
    assert summary["events_counted"] == 4
    assert summary["total_points"] == 10 + 10 + 10 + 5  # l1, l2, l3, quiz 55: each once
    assert (
        store.tables["learning_events"][("s1", "c")][col("learning_events", "batch_version")] == 3
    )

    # the rebuilt state is the crashed one: a further event gives the same rows from both
    more = batch([quiz("e", HOT, 95), lesson("f", "2026-11-17T10:00:00Z", "l3")], 20)
    assert restarted.process(more, NOW, 5).tables == crashed.process(more, NOW, 5).tables


@pytest.mark.parametrize("with_snapshot", [True, False], ids=["older-snapshot", "no-snapshot"])
def test_crash_after_aggregates_before_learning_events_counts_once(with_snapshot: bool) -> None:
    store = MemoryStore()
    crashed = first_batch_and_snapshot(store, with_snapshot)
    result = crashed.process(batch(LOST, 10), now=NOW, version=3)
    assert (result.counted, result.duplicates) == (2, 1)
    store.write(result, tables=("dead_letters", *AGGREGATES))  # then the worker dies

    restarted = EventProcessor(store)
    replay = restarted.process(batch(LOST, 10), now=NOW, version=4)
    assert (replay.counted, replay.duplicates) == (2, 1)  # c and d applied, a still a duplicate
    assert counted_ids(replay) == ["c", "d"]
    assert {
        r[col("learning_events", "batch_version")] for r in replay.tables["learning_events"]
    } == {4}
    # the same facts as the crashed flush: the same rows but for their version
    assert without_versions(replay.tables) == without_versions(result.tables)
    store.write(replay)
    summary = store.summary("s1")
    assert summary["events_counted"] == 4
    assert summary["total_points"] == 10 + 10 + 10 + 5  # l1, l2, l3, quiz 55: each once
    assert (
        store.tables["learning_events"][("s1", "c")][col("learning_events", "batch_version")] == 4
    )

    # and once everything is written, a further replay changes nothing
    final = EventProcessor(store).process(batch(LOST, 10), now=LATER, version=5)
    assert (final.counted, final.duplicates) == (0, 3) and no_rows(final)


TWO_STUDENTS = [
    lesson("s1-old", OLD),
    lesson("s2-old", OLD, student="s2"),
    lesson("s1-hot", HOT, "l2"),
    lesson("s2-hot", HOT, "l2", student="s2"),
]


def test_crash_in_the_middle_of_learning_events() -> None:
    """Batch v1 wrote the aggregates and s1's events, not s2's: only s2's are counted again."""
    store = MemoryStore()
    result = EventProcessor(store).process(batch(TWO_STUDENTS), now=NOW, version=1)
    store.write(result, tables=AGGREGATES)
    store.insert("learning_events", [r for r in result.tables["learning_events"] if r[1] == "s1"])

    replay = EventProcessor(store).process(batch(TWO_STUDENTS), now=NOW, version=2)
    assert sorted(counted_ids(replay)) == ["s2-hot", "s2-old"]
    assert replay.duplicates == 2
    assert replay.students == ["s2"]
    store.write(replay)
    assert store.summary("s1")["events_counted"] == store.summary("s2")["events_counted"] == 2
    assert store.summary("s1")["total_points"] == store.summary("s2")["total_points"] == 20


def test_crash_in_the_middle_of_a_snapshot() -> None:
    """Snapshot v3 was written for s1, not for s2: s1 from its snapshot, s2 from the replay."""
    store = MemoryStore()
    processor = EventProcessor(store)
    store.write(processor.process(batch(TWO_STUDENTS[:2]), now=NOW, version=1))
    store.write(processor.process(batch(TWO_STUDENTS[2:], 2), now=NOW, version=2))
    snapshot = processor.cache.snapshot_rows(3)
    assert sorted(r[0] for r in snapshot) == ["s1", "s2"]
    store.insert("student_state", [r for r in snapshot if r[0] == "s1"])  # then it dies

    restarted = EventProcessor(store)
    again = restarted.process(batch(TWO_STUDENTS), now=NOW, version=4)
    assert (again.counted, again.duplicates) == (0, 4) and no_rows(again)
    assert store.replays[-1] == ({"s1": 3, "s2": 0}, ["s2-hot", "s2-old"])
    assert restarted.cache.unsnapshotted == {"s2"}  # only s2 still needs a snapshot
    more = batch([quiz("q", HOT, 75), quiz("q2", HOT, 80, student="s2")], 10)
    assert restarted.process(more, NOW, 5).tables == processor.process(more, NOW, 5).tables


# -------------------------------------------------------------------------- snapshots


def test_snapshot_rows_after_a_reload_include_students_changed_only_by_replay() -> None:
    store = MemoryStore()
    processor = EventProcessor(store)
    first = [lesson("a1", HOT), lesson("b1", HOT, student="s2"), quiz("c1", HOT, 40, student="s3")]
    store.write(processor.process(batch(first), NOW, 1))
    assert sorted(r[0] for r in store.snapshot(processor, version=2)) == ["s1", "s2", "s3"]
    assert processor.cache.snapshot_rows(3) == []  # nothing changed since
    later = [lesson("a2", "2026-11-24T10:00:00Z", "l2"), quiz("c2", HOT, 90, student="s3")]
    store.write(processor.process(batch(later, 3), NOW, 4))  # then a restart, no snapshot

    restarted = EventProcessor(store)
    resent = batch(first + later)
    again = restarted.process(resent, NOW, 5)
    assert (again.counted, again.duplicates) == (0, 5) and no_rows(again)
    assert restarted.cache.unsnapshotted == {"s1", "s3"}
    snapshot = restarted.cache.snapshot_rows(6)
    # s1 and s3 changed through the replay of batch v4 only; s2 is its snapshot
    assert sorted(r[0] for r in snapshot) == ["s1", "s3"]
    assert {r[col("student_state", "version")] for r in snapshot} == {6}
    assert restarted.cache.unsnapshotted == set() and restarted.cache.snapshot_rows(7) == []

    # the snapshot is the one a processor that never restarted would take
    assert processor.process(resent, NOW, 5).counted == 0
    assert snapshot_view(snapshot) == snapshot_view(processor.cache.snapshot_rows(6))
    store.insert("student_state", snapshot)
    # a reload now replays nothing for s1 and s3 and is the state of that processor
    reloaded = EventProcessor(store)
    assert reloaded.process(resent, NOW, 8).counted == 0
    assert store.replays[-1] == ({"s1": 6, "s2": 2, "s3": 6}, [])
    for sid in ("s1", "s2", "s3"):
        assert canonical(reloaded.cache.states[sid]) == canonical(processor.cache.states[sid]), sid


HOT_STREAM = [
    lesson("h1", "2026-11-20T10:00:00Z"),
    lesson("h2", "2026-11-19T10:00:00Z"),  # earlier completion of l1
    quiz("h3", "2026-11-21T10:00:00Z", 55),
    quiz("h4", "2026-11-22T10:00:00Z", 85),
    quiz("h5", "2026-11-20T12:00:00Z", 90),  # earlier and higher
    {**lesson("h6", "2026-11-23T10:00:00Z"), "type": "unenrolled", "courseId": "c2"},
    lesson("h7", "2026-11-25T23:30:00Z", "l2", timezone="Asia/Tokyo", progress=30),
    lesson("h8", "2026-11-24T10:00:00Z", "l3", completed=False, progress=20),
    lesson("t1", "2026-11-25T10:00:00Z", student="s2"),
    quiz("t2", "2026-11-24T10:00:00Z", 100, student="s2"),
]
OLD_EVENTS = [
    lesson("o1", "2026-10-05T10:00:00Z", "l4"),
    quiz("o2", "2026-10-06T10:00:00Z", 95),  # old, earlier and higher than every quiz
    lesson("o3", "2026-10-01T10:00:00Z", "l5", student="s2"),
]


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(HOT_STREAM, id="hot-events"),
        pytest.param(
            HOT_STREAM + OLD_EVENTS,
            id="with-old-events",
        ),
    ],
)
def test_snapshot_and_replay_give_the_state_of_a_processor_that_never_restarted(
    stream: list[dict[str, Any]],
) -> None:
    rng = random.Random(26)
    for run in range(10):
        events = rng.sample(stream, len(stream))
        cut, end = sorted(rng.sample(range(1, len(events)), 2))
        store = MemoryStore(seed=run)
        processor = EventProcessor(store)
        store.write(processor.process(batch(events[:cut]), NOW, 1))
        store.snapshot(processor, version=2)
        store.write(processor.process(batch(events[cut:end], cut), NOW, 3))
        store.write(processor.process(batch(events[end:], end), NOW, 4))  # then a restart

        restarted = EventProcessor(store)
        resent = batch(events)  # reloads every student, changes nothing
        assert restarted.process(resent, NOW, 5).counted == 0
        assert processor.process(resent, NOW, 5).counted == 0
        assert set(restarted.cache.states) == set(processor.cache.states) == {"s1", "s2"}
        for sid in ("s1", "s2"):
            assert canonical(restarted.cache.states[sid]) == canonical(
                processor.cache.states[sid]
            ), (
                run,
                sid,
            )


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
SNAPSHOT_AFTER = {2, 3, 5}  # snapshots are taken after these batches (1-based), not every one


def run_batches(cache_students: int) -> tuple[list[BatchResult], MemoryStore, EventProcessor]:
    store = MemoryStore()
    processor = EventProcessor(store, cache_students=cache_students)
    results = []
    offset = 0
    version = 0
    for number, payloads in enumerate(BATCHES, start=1):
        version += 1
        result = processor.process(batch(payloads, offset), now=NOW, version=version)
        offset += len(payloads)
        store.write(result)
        changed = set(processor.cache.unsnapshotted)
        if number in SNAPSHOT_AFTER:
            version += 1
            store.snapshot(processor, version)
            changed = set()
        before = list(processor.cache.states)
        processor.cache.evict()
        after = list(processor.cache.states)
        assert after == [sid for sid in before if sid in after]  # order of use kept
        assert changed <= set(after)  # changed since the last snapshot: never dropped
        assert len(after) == min(len(before), max(cache_students, len(changed)))
        clean_before = [sid for sid in before if sid not in changed]
        clean_after = [sid for sid in after if sid not in changed]
        assert clean_after == clean_before[len(clean_before) - len(clean_after) :]  # LRU first
        results.append(result)
    return results, store, processor


def test_new_students_start_without_a_look_up_known_ones_are_loaded() -> None:
    store = MemoryStore()
    first = EventProcessor(store)
    store.write(first.process(batch([lesson("e1", HOT, student="s1")]), NOW, 1))
    assert store.loads == []  # nobody was known: no snapshot or replay asked for

    restarted = EventProcessor(store)
    result = restarted.process(
        batch([lesson("e1", HOT, student="s1"), lesson("e2", HOT, student="s2")], 1), NOW, 2
    )
    assert store.loads == [["s1"]]  # s1 was written before; s2 never was
    assert [ids for ids, _ in store.replays] == [{"s1": 0}]
    assert (result.counted, result.duplicates) == (1, 1)  # s1's e1 came back from the replay
    assert store.known_reads == 2  # once per processor


def test_students_written_by_another_worker_are_loaded_after_an_assignment() -> None:
    store = MemoryStore()
    mine, other = EventProcessor(store), EventProcessor(store)
    store.write(mine.process(batch([lesson("e1", HOT, student="s1")]), NOW, 1))
    # s2's partition belongs to the other worker, which writes it ...
    store.write(other.process(batch([lesson("e2", HOT, student="s2")], 0, 1), NOW, 2))
    # ... then moves here: the assignment makes the filter be read again
    mine.forget_known()
    again = mine.process(batch([lesson("e2", HOT, student="s2")], 1, 1), NOW, 3)
    assert (again.counted, again.duplicates) == (0, 1)
    assert store.loads[-1] == ["s2"]


def test_rebuilt_filter_keeps_students_of_unwritten_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild (filter full) reads the store, which lacks the batch not yet written:
    its students are taken from the states held, so they are still looked up."""
    monkeypatch.setattr(known_students, "MIN_CAPACITY", 1)
    store = MemoryStore()
    processor = EventProcessor(store)
    unwritten = processor.process(batch([lesson("e1", HOT, student="s1")]), NOW, 1)
    processor.forget_known()
    processor.process(batch([lesson("e2", HOT, student="s2")], 1), NOW, 2)  # rebuilt: s1 held
    store.write(unwritten)
    assert processor.known is not None and processor.known.may_know("s1")
    for sid in ("s3", "s4", "s5"):  # more ids than it was sized for: rebuilt again
        processor.process(batch([lesson(f"e-{sid}", HOT, student=sid)], 2), NOW, 3)
    assert store.known_reads > 2
    assert all(processor.known.may_know(sid) for sid in ("s1", "s2", "s3", "s4", "s5"))


def test_known_students_has_no_false_negatives() -> None:
    ids = [f"student-{i}" for i in range(50_000)]
    known = KnownStudents.of(ids[:25_000], 25_000)
    assert all(known.may_know(sid) for sid in ids[:25_000])
    false_positives = sum(known.may_know(sid) for sid in ids[25_000:])
    assert false_positives < 25_000 * 0.02  # sized for 1 %


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
    processor = EventProcessor(store)
    result = processor.process(
        batch([lesson("e1", HOT, progress=10), quiz("e2", HOT, 50)], partition=4),
        now=NOW,
        version=version,
    )
    assert set(result.tables) == set(BATCH_TABLES)  # no student_state rows from a batch
    for table in BATCH_TABLES:
        table_rows = result.tables[table]
        assert table_rows, table
        assert {r[col(table, KEYS[table][1])] for r in table_rows} == {version}, table
    for table, time_col in [
        ("learning_events", "ingested_at"),
        ("student_courses", "updated_at"),
        ("student_summary", "updated_at"),
    ]:
        assert {r[col(table, time_col)] for r in result.tables[table]} == {NOW.timestamp()}

    snapshot_version = version + 1  # the snapshot carries its own version
    (state_row,) = processor.cache.snapshot_rows(snapshot_version)
    assert state_row[col("student_state", "student_id")] == "s1"
    assert state_row[col("student_state", "version")] == snapshot_version
    assert state_row[col("student_state", "kafka_partition")] == 4
    blob = orjson.loads(state_row[col("student_state", "state")])
    assert (blob["v"], blob["p"], blob["n"]) == (snapshot_version, 4, 2)
    assert processor.cache.snapshot_rows(snapshot_version + 1) == []  # nothing changed since


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
    # rows hold times as epoch seconds (read by ClickHouse into DateTime64(3))
    assert event["occurred_at"] == dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.UTC).timestamp()


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
# New events of every student after the stream (to compare rebuilt states through their rows).
FOLLOW_UP = [
    quiz("f1", "2026-11-17T10:00:00Z", 95),  # re-assigns quiz points of s1
    lesson("f2", "2026-11-10T10:00:00Z", "l3", student="s2"),
    lesson("f3", "2026-11-26T08:00:00Z", student="s3"),
]


def final_tables(store: MemoryStore) -> dict[str, Any]:
    """The stored aggregates without the columns that name a flush (version, times, offsets)."""
    skip = {"version", "updated_at"}
    view: dict[str, Any] = {"learning_events": sorted(store.tables["learning_events"])}
    for table in AGGREGATES:
        names = rows.COLUMNS[table]
        view[table] = {
            key: [v for n, v in zip(names, row, strict=True) if n not in skip]
            for key, row in store.tables[table].items()
        }
    return view


def test_the_sink_writes_learning_events_after_the_aggregates() -> None:
    """The crash tests rely on it: learning_events is never written without the rows before."""
    order = list(WRITE_ORDER)
    assert order.index("learning_events") > max(
        order.index(t) for t in ("dead_letters", *AGGREGATES)
    )


def test_any_batching_snapshots_restarts_and_crashes_give_the_same_tables() -> None:
    """Shuffled batches with re-sends, snapshots at random points between batches, restarts,
    evictions and crashes at any point of a flush or of a snapshot: same stored result."""
    once = MemoryStore()
    ordered = sorted(STREAM, key=lambda p: p["occurredAt"])
    never_restarted = EventProcessor(once)
    once.write(never_restarted.process(batch(ordered), now=NOW, version=1))
    expected = final_tables(once)
    assert expected["student_summary"][("s1",)][0:2] == ["s1", 10 + 10 + 9]  # l1, l2, quiz 90
    assert expected["student_summary"][("s3",)][0:2] == ["s3", 10]
    expected_follow_up = never_restarted.process(batch(FOLLOW_UP), now=NOW, version=10**6).tables

    rng = random.Random(1126)
    crashes = {"flush": 0, "after-flush": 0, "snapshot": 0, "restart": 0}
    for run in range(60):
        store = MemoryStore(seed=run)
        cache = rng.choice([1, 2, 1000])
        hot = rng.choice([0, 1, 2])  # idle states frozen as JSON beyond `hot`
        processor = EventProcessor(store, cache_students=cache, hot_students=hot)
        pending = STREAM + rng.sample(STREAM, 4)  # some events are delivered twice
        rng.shuffle(pending)
        version = 0
        while pending:
            size = rng.randint(1, 4)
            chunk, pending = pending[:size], pending[size:]
            version += 1
            result = processor.process(batch(chunk), now=NOW, version=version)
            assert "student_state" not in result.tables
            writes = flush_sequence(result)
            if rng.random() < 0.25:  # the worker dies after `done` rows, before acking
                done = rng.randint(0, len(writes))
                crashes["flush" if done < len(writes) else "after-flush"] += 1
                for table, row in writes[:done]:
                    store.insert(table, [row])
                processor = EventProcessor(store, cache_students=cache, hot_students=hot)
                pending = chunk + pending  # Kafka delivers the batch again
                continue
            for table, row in writes:
                store.insert(table, [row])
            if rng.random() < 0.3:  # a snapshot between batches
                version += 1
                snapshot = processor.cache.snapshot_rows(version)
                if snapshot and rng.random() < 0.25:  # the worker dies while writing it
                    crashes["snapshot"] += 1
                    store.insert("student_state", snapshot[: rng.randint(0, len(snapshot) - 1)])
                    processor = EventProcessor(store, cache_students=cache, hot_students=hot)
                    continue
                store.insert("student_state", snapshot)
            if rng.random() < 0.2:  # a clean restart: changes since the snapshot not written
                crashes["restart"] += 1
                processor = EventProcessor(store, cache_students=cache, hot_students=hot)
            processor.cache.evict()
            processor.cache.freeze()
            assert processor.cache.unsnapshotted <= set(processor.cache.states)
            assert not set(processor.cache.states) & set(processor.cache.frozen)
            kept = len(processor.cache.states) + len(processor.cache.frozen)
            assert kept <= max(cache, len(processor.cache.unsnapshotted))
            if hot:
                assert len(processor.cache.states) <= max(hot, len(processor.cache.unsnapshotted))
        assert final_tables(store) == expected, f"run {run}"

        # every event is known after a restart, and the rebuilt states are the right ones
        restarted = EventProcessor(store, cache_students=cache)
        resent = restarted.process(batch(STREAM), now=NOW, version=version + 1)
        assert (resent.counted, resent.duplicates) == (0, len(STREAM)) and no_rows(resent)
        follow_up = restarted.process(batch(FOLLOW_UP), now=NOW, version=10**6)
        assert follow_up.tables == expected_follow_up, f"run {run}"
    assert min(crashes.values()) >= 10, crashes  # every kind of interruption happened


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


def test_old_event_counted_by_an_unwritten_batch_is_a_duplicate_in_the_next() -> None:
    """Batch N+1 is processed while N is written: N's old events are neither in the
    recent ids (pruned) nor in learning_events yet, and must still count once."""
    store = MemoryStore()
    processor = EventProcessor(store)
    first = processor.process(batch([lesson("old-1", OLD)]), NOW, 1)
    assert first.counted == 1
    second = processor.process(batch([lesson("old-1", OLD)], 1), NOW, 2)  # N not written yet
    assert (second.counted, second.duplicates) == (0, 1)
    store.write(first)
    processor.written(first)
    assert processor.unwritten_old == set()
    third = processor.process(batch([lesson("old-1", OLD)], 2), NOW, 3)  # now found in the store
    assert (third.counted, third.duplicates) == (0, 1)


def test_forgotten_unwritten_old_events_count_when_delivered_again() -> None:
    """A batch abandoned before its write is re-read: its old events must count then."""
    store = MemoryStore()
    processor = EventProcessor(store)
    abandoned = processor.process(batch([lesson("old-1", OLD)]), NOW, 1)
    processor.forget(abandoned.students)
    again = processor.process(batch([lesson("old-1", OLD)]), NOW, 2)
    assert (again.counted, again.duplicates) == (1, 0)
