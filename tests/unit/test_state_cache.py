"""The state cache (``streams.state_cache``): what leaves memory and how, through the processor.

States are frozen to compressed snapshot JSON or dropped only after a snapshot
and never while protected; a frozen, packed or reloaded state gives exactly the
rows a state that never left memory gives.
"""

from __future__ import annotations

import orjson

from streams import rows
from streams.processor import EventProcessor
from streams.state_cache import compress_state, decompress_state
from tests.unit.test_processor import (
    BATCHES,
    HOT,
    NOW,
    SNAPSHOT_AFTER,
    MemoryStore,
    batch,
    lesson,
    run_batches,
    snapshot_view,
)


def test_cache_eviction_reloads_states_with_identical_results() -> None:
    small, small_store, small_processor = run_batches(cache_students=1)
    large, large_store, large_processor = run_batches(cache_students=1000)
    assert len(small_processor.cache.states) == 3  # batch 6 changed s1, s2, s4: no snapshot since
    assert len(large_processor.cache.states) == 4
    assert len(small_store.loads) > len(large_store.loads)  # evicted states were reloaded
    for got, expected in zip(small, large, strict=True):
        assert got.tables == expected.tables
        assert (got.counted, got.duplicates) == (expected.counted, expected.duplicates)
    assert small_store.tables == large_store.tables  # snapshots included
    # the expectation, by hand: duplicates a1 and b1 (hot), old-b (old) are dropped
    assert [r.duplicates for r in small] == [0, 0, 1, 1, 1, 0]
    assert small_store.summary("s1")["total_points"] == 10 + 10  # l1 once, l3
    assert small_store.summary("s2")["total_points"] == 10 + 10 + 10  # l1, l7, l2
    assert small_store.summary("s3")["total_points"] == 9  # quizzes 55, 90, 95 -> best 95
    assert small_store.summary("s3")["events_counted"] == 3


def test_frozen_idle_states_give_identical_results() -> None:
    """States kept as snapshot JSON and rebuilt on their next event change nothing."""
    results = {}
    for hot in (0, 1):
        store = MemoryStore()
        processor = EventProcessor(store, hot_students=hot)
        got, offset, version, frozen = [], 0, 0, 0
        for number, payloads in enumerate(BATCHES, start=1):
            version += 1
            result = processor.process(batch(payloads, offset), now=NOW, version=version)
            offset += len(payloads)
            store.write(result)
            if number in SNAPSHOT_AFTER:
                version += 1
                store.snapshot(processor, version)
            frozen += processor.cache.freeze(protect=set(result.students))
            got.append((result.tables, result.counted, result.duplicates))
        results[hot] = (got, store.tables, frozen, len(store.loads))
    (plain, plain_tables, never, plain_loads), (thawed, thawed_tables, frozen, loads) = (
        results[0],
        results[1],
    )
    assert never == 0 and frozen > 0
    assert thawed == plain and thawed_tables == plain_tables
    assert loads == plain_loads  # rebuilt from memory, not read from the store again


def write_one_lesson_each(
    store: MemoryStore, processor: EventProcessor, students: list[str]
) -> None:
    """One written batch per student in turn (version n): lesson ``e-<student>-<n>``."""
    for version, student in enumerate(students, start=1):
        event = lesson(f"e-{student}-{version}", HOT, student=student)
        store.write(processor.process(batch([event]), NOW, version))


def test_freeze_keeps_changed_and_protected_states_as_objects() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, hot_students=1)
    write_one_lesson_each(store, processor, ["s1", "s2", "s3"])
    assert processor.cache.freeze() == 0  # nothing is in a snapshot yet
    store.snapshot(processor, version=4)
    assert processor.cache.freeze(protect={"s1"}) == 2  # s1 protected: over the one hot state
    assert list(processor.cache.states) == ["s1"] and list(processor.cache.frozen) == ["s2", "s3"]
    loads = len(store.loads)
    result = processor.process(batch([lesson("e-s2-b", HOT, "l2", student="s2")]), NOW, 5)
    assert result.counted == 1 and len(store.loads) == loads  # thawed, not reloaded
    assert list(processor.cache.states) == ["s1", "s2"] and list(processor.cache.frozen) == ["s3"]
    assert processor.cache.freeze() == 1  # s1 goes; s2 changed since the snapshot: stays an object
    assert list(processor.cache.states) == ["s2"] and list(processor.cache.frozen) == ["s3", "s1"]
    processor.cache.forget_partitions({0})
    assert not processor.cache.states and not processor.cache.frozen


def test_freezing_reuses_the_snapshot_json_of_the_same_state() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, hot_students=3)  # three states: none packed
    write_one_lesson_each(store, processor, ["s1", "s2", "s3"])
    assert not processor.cache.packed
    states = dict(processor.cache.states)
    expected = {sid: decompress_state(compress_state(state)) for sid, state in states.items()}
    store.snapshot(processor, version=4)
    snapshot_json = {sid: orjson.loads(text) for sid, text in processor.cache.snapshot_json.items()}
    processor.cache.hot_students = 1
    assert processor.cache.freeze() == 2
    assert not processor.cache.snapshot_json  # kept only until this freeze
    for sid, (_, version, frozen) in processor.cache.frozen.items():
        assert version == 4
        assert decompress_state(frozen) == snapshot_json[sid]
        assert decompress_state(frozen) == {**expected[sid], "v": 4}


def test_states_changed_while_freezing_are_packed_after_their_batch() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, hot_students=1)
    write_one_lesson_each(store, processor, ["s1", "s2", "s3"])
    # s1's batch left one state, within hot_students; s2's and s3's were over it.
    assert sorted(processor.cache.packed) == ["s2", "s3"]
    states = processor.cache.states
    now_json = {sid: decompress_state(compress_state(state)) for sid, state in states.items()}
    snapshot = snapshot_view(store.snapshot(processor, version=4))
    assert list(processor.cache.snapshot_json) == ["s1"]  # the others freeze from the packed JSON
    for sid in ("s1", "s2", "s3"):  # packed or not: the same row as the state makes now
        assert snapshot[sid] == snapshot_view([rows.state_row(processor.cache.states[sid], 4)])[sid]
    assert processor.cache.freeze() == 2
    assert list(processor.cache.frozen) == ["s1", "s2"]  # the least recently used
    for sid, (_, version, frozen) in processor.cache.frozen.items():
        assert version == 4
        assert {**decompress_state(frozen), "v": 4} == {**now_json[sid], "v": 4}
    # s1's JSON is its snapshot's; s2's was packed after its batch, before the snapshot
    assert [decompress_state(f)["v"] for _, _, f in processor.cache.frozen.values()] == [4, 0]
    assert not set(processor.cache.packed) & set(
        processor.cache.frozen
    )  # handed over, not kept twice
    thawed = "s2"
    processor.process(batch([lesson(f"e-{thawed}-5", HOT, "l9", student=thawed)]), NOW, 5)
    assert processor.cache.states[thawed].version == 4  # the snapshot's, not the packed "v"
    (row,) = processor.cache.snapshot_rows(6)  # packed again after the change, and it holds it
    assert snapshot_view([row]) == snapshot_view(
        [rows.state_row(processor.cache.states[thawed], 6)]
    )
    assert orjson.loads(row[rows.COLUMNS["student_state"].index("state")])["n"] == 2


def test_a_state_changed_while_not_packing_drops_its_older_packed_json() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, hot_students=1)
    write_one_lesson_each(store, processor, ["s1", "s2"])
    assert "s2" in processor.cache.packed
    processor.cache.hot_students = 5  # all fit now: nothing is packed
    store.write(processor.process(batch([lesson("e-s2-9", HOT, "l9", student="s2")]), NOW, 3))
    assert "s2" not in processor.cache.packed
    (row,) = [r for r in store.snapshot(processor, 4) if r[0] == "s2"]
    assert orjson.loads(row[2])["n"] == 2  # both lessons, not the packed one


def test_states_are_evicted_only_after_a_snapshot() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, cache_students=1)
    write_one_lesson_each(store, processor, ["s1", "s2", "s3"])
    assert processor.cache.evict() == 0  # above its size, but nothing is in a snapshot yet
    assert list(processor.cache.states) == ["s1", "s2", "s3"]
    store.snapshot(processor, version=4)
    assert processor.cache.evict() == 2
    assert list(processor.cache.states) == ["s3"]  # the most recently used


def test_evict_drops_least_recently_used_first() -> None:
    store = MemoryStore()
    processor = EventProcessor(store, cache_students=2)
    write_one_lesson_each(store, processor, ["s1", "s2", "s3", "s1"])
    assert processor.cache.evict() == 0 and len(processor.cache.states) == 3  # no snapshot yet
    store.snapshot(processor, version=5)
    assert processor.cache.evict() == 1
    assert list(processor.cache.states) == ["s3", "s1"]  # s2 was the least recently used

    store.write(processor.process(batch([lesson("e-s2-6", HOT, student="s2")]), NOW, 6))
    # s3 and s1 used again (duplicates: nothing changes), s2 becomes the least recently used
    assert processor.process(batch([lesson("e-s3-3", HOT, student="s3")]), NOW, 7).counted == 0
    assert processor.process(batch([lesson("e-s1-4", HOT, student="s1")]), NOW, 8).counted == 0
    assert list(processor.cache.states) == ["s2", "s3", "s1"]
    assert processor.cache.evict() == 1
    assert list(processor.cache.states) == ["s2", "s1"]  # s2 is not in a snapshot: s3 goes instead
