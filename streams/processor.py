"""Batch processing of ``learning-events``: messages in, rows and dead letters out.

``EventProcessor.process`` validates a batch, loads the states of the students it
touches (through a ``StateStore``), drops duplicates, applies the rules and
returns every ClickHouse row the batch changes. It does no I/O itself, so it is
exercised by unit tests with an in-memory store and benchmarked alone.

State and restarts: ``learning_events`` (the durable record of every counted
event, written last in each flush, after the aggregates) is the truth. A
student's state is its last snapshot in ``student_state`` plus the counted
events written after that snapshot (``batch_version`` greater than the
snapshot's), applied again when the state is loaded; snapshots are written
every few seconds (``snapshot_rows``), not with every batch, because rules are
order-independent and a replay therefore rebuilds exactly the same state.

Memory: the ``hot_students`` most recently active states are kept as objects;
older ones, once saved in a snapshot, are kept as their snapshot JSON compressed
with LZ4 (~660 bytes against ~5.7 KiB as objects; 1.6 KiB uncompressed) and
rebuilt when the student is active again (~16 µs); that JSON is taken right after
the state's last batch (``_packed``), so its "v" may be older than the snapshot's
version, which is kept beside it;
beyond ``cache_students`` in all, the least recently used are dropped (their
snapshot is in ClickHouse). Students never seen (not in the ``KnownStudents``
Bloom filter) start empty without a look-up.

Duplicates (SPEC: an ``eventId`` seen twice counts once), in two tiers:
- an event that happened within ``recent_ids_days`` is checked against the ids
  kept in the student's state (rebuilt by the replay, so it survives restarts);
- an older event is looked up in ``learning_events``: if it is there, it was
  counted. So duplicates are recognised without a time limit.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import lz4.block
import orjson

from schemas.dead_letter import DeadLetter, payload_text
from schemas.errors import InvalidMessage
from schemas.events import ParsedEvent, parse_event
from streams import rows
from streams.known_students import KnownStudents
from streams.student_state import StudentState

PRUNE_MARGIN_MS = 3_600_000
# Per-student state lives with the partition of the student's key: a message keyed
# otherwise would be counted by a worker that does not own the student.
KEY_MISMATCH = "the message key must be the event's studentId (SPEC §2)"


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 4x as long to build (0.49 µs)
class Message:
    """One Kafka message as the processor needs it (one per message: treat as read-only)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class StateStore(Protocol):
    """Where state snapshots and the record of counted events live (ClickHouse)."""

    def load_states(self, student_ids: list[str]) -> dict[str, StudentState]:
        """The latest snapshots of these students (absent when there is none)."""
        ...

    def counted_since(self, versions: dict[str, int]) -> list[ParsedEvent]:
        """Counted events of these students written by flushes after ``versions[sid]``."""
        ...

    def counted(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (student, event) pairs of ``keys`` that ``learning_events`` holds."""
        ...

    def known_students(self) -> KnownStudents:
        """Every student with a snapshot or a counted event (more is harmless)."""
        ...


@dataclass(slots=True)
class BatchResult:
    """What one batch changes: rows per table, dead letters, counts."""

    tables: dict[str, list[rows.Row]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    counted: int = 0
    duplicates: int = 0
    students: list[str] = field(default_factory=list)
    # (student, event) of counted events older than the recent-ids window: until
    # the batch is written, the processor remembers them (``written``).
    old_counted: list[tuple[str, str]] = field(default_factory=list)

    def add(self, table: str, new_rows: Iterable[rows.Row]) -> None:
        self.tables.setdefault(table, []).extend(new_rows)


def compress_state(state: StudentState, snapshot_json: str | None = None) -> bytes:
    """An idle state as LZ4-compressed snapshot JSON: 2.7x smaller for 2 µs more.

    zlib (level 1) is 3.7x smaller but takes 15.5 µs to compress and 5.3 to
    decompress (against 1.9 and 0.8); in this workload nearly every event thaws a
    state and later freezes it, and zlib was 15 % of the event loop's time.

    ``snapshot_json``: the state's JSON as its snapshot row holds it, when the
    state was just snapshotted (the same text; serialising it again was half the
    cost of freezing).
    """
    text = snapshot_json.encode() if snapshot_json is not None else orjson.dumps(state.to_dict())
    return lz4.block.compress(text)


def decompress_state(frozen: bytes) -> dict[str, Any]:
    """The ``to_dict`` of a state kept by ``compress_state``."""
    return orjson.loads(state_text(frozen))


def state_text(frozen: bytes) -> bytes:
    """The JSON text of a state kept by ``compress_state``."""
    return lz4.block.decompress(frozen)


def dead_letter(message: Message, error: InvalidMessage, now: dt.datetime) -> DeadLetter:
    """The dead letter of a rejected message."""
    text, truncated = payload_text(message.value)
    return DeadLetter(
        reason=error.reason,
        field=error.field,
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key.decode("utf-8", errors="replace") if message.key is not None else None,
        received_at=now,
        payload=text,
        payload_truncated=truncated,
    )


def dead_letter_row(letter: DeadLetter) -> rows.Row:
    """The ``dead_letters`` row of a dead letter."""
    return [
        letter.received_at, letter.source_topic, letter.partition, letter.offset,
        letter.key or "", letter.reason, letter.field, letter.payload,
    ]  # fmt: skip


class EventProcessor:
    """Keeps states of recently active students in memory and applies batches."""

    def __init__(
        self,
        store: StateStore,
        *,
        recent_ids_days: float = 7.0,
        max_future_seconds: float = 86400.0,
        max_event_bytes: int = 65536,
        cache_students: int = 200_000,
        hot_students: int = 0,
    ) -> None:
        self.store = store
        self.recent_window_ms = int(recent_ids_days * 86_400_000)
        self.max_future = dt.timedelta(seconds=max_future_seconds)
        self.max_event_bytes = max_event_bytes
        self.cache_students = cache_students
        self.hot_students = hot_students  # 0: every cached state stays an object
        self.states: OrderedDict[str, StudentState] = OrderedDict()
        # Idle states as (partition, snapshot version, LZ4-compressed JSON; see
        # ``_packed`` for its "v"), least recently used first.
        self.frozen: OrderedDict[str, tuple[int, int, bytes]] = OrderedDict()
        # Students whose state changed since its last snapshot.
        self.unsnapshotted: set[str] = set()
        # Old events counted by batches not yet written: their ids are pruned from
        # the states and not yet in learning_events (see ``written``).
        self.unwritten_old: set[tuple[str, str]] = set()
        # Students the store may hold (None: read it from the store when next needed).
        self.known: KnownStudents | None = None
        # The JSON of the states in the last snapshot, until the next ``freeze``.
        self._snapshot_json: dict[str, str] = {}
        # While states are being frozen: a changed state's ``compress_state``, taken
        # right after its batch while its objects are in the CPU's caches. The
        # snapshot and the freezing use it instead of serialising the state again
        # ~15k states later, when that took ~4x as long (BENCHMARKS.md, tenth
        # session). Its "v" is the version of the state's snapshot before: the
        # snapshot row's text gets the new one, a frozen state keeps it beside.
        self._packed: dict[str, bytes] = {}

    # ----------------------------------------------------------------- batches
    def process(self, messages: list[Message], now: dt.datetime, version: int) -> BatchResult:
        """Apply a batch; the returned rows are what must be written before acking it."""
        result = BatchResult()
        valid: list[tuple[Message, ParsedEvent]] = []
        for message in messages:
            try:
                parsed = parse_event(
                    message.value,
                    now=now,
                    max_future=self.max_future,
                    max_bytes=self.max_event_bytes,
                )
                if message.key != parsed.student_id.encode():
                    raise InvalidMessage(KEY_MISMATCH, field="key")
            except InvalidMessage as error:
                result.dead_letters.append(dead_letter(message, error, now))
                continue
            valid.append((message, parsed))
        if result.dead_letters:
            result.add("dead_letters", map(dead_letter_row, result.dead_letters))
        if not valid:
            return result

        now_ms = int(now.timestamp() * 1000)
        cutoff = now_ms - self.recent_window_ms
        prune_before = cutoff - PRUNE_MARGIN_MS
        states = self._states_for({p.student_id for _, p in valid}, valid, prune_before)
        cold = [
            (p.student_id, p.event_id)
            for _, p in valid
            if p.occurred_ms < cutoff and not states[p.student_id].seen(p.event_id)
        ]
        counted_before = self.store.counted(cold) if cold else set()
        unwritten = self.unwritten_old

        event_rows = []
        touched: dict[str, StudentState] = {}
        for message, parsed in valid:
            state = states[parsed.student_id]
            key = (parsed.student_id, parsed.event_id)
            if key in counted_before or key in unwritten or not state.apply(parsed):
                result.duplicates += 1
                continue
            if parsed.occurred_ms < cutoff:  # its id is pruned below: remember until written
                unwritten.add(key)
                result.old_counted.append(key)
            result.counted += 1
            touched[parsed.student_id] = state
            event_rows.append(
                rows.event_row(parsed, message.partition, message.offset, now, version)
            )

        course_rows: list[rows.Row] = []
        day_rows: list[rows.Row] = []
        summary_rows: list[rows.Row] = []
        dashboard_rows: list[rows.Row] = []
        packed = self._packed if 0 < self.hot_students < len(self.states) else None
        for state in touched.values():
            state.prune_recent_ids(prune_before)
            courses, days, summary, dashboard = rows.student_rows(state, now, version)
            course_rows += courses
            day_rows += days
            summary_rows.append(summary)
            dashboard_rows.append(dashboard)
            state.clear_dirty()
            state.derived.clear()  # a third of a state's memory; rebuilt when next needed
            if packed is not None:  # states are being frozen: see ``_packed``
                packed[state.student_id] = compress_state(state)
            elif self._packed:  # not packed now: an older one would be out of date
                self._packed.pop(state.student_id, None)
        result.add("student_courses", course_rows)
        result.add("student_course_daily", day_rows)
        result.add("student_summary", summary_rows)
        result.add("student_dashboard", dashboard_rows)
        result.add("learning_events", event_rows)
        result.students = list(touched)
        self.unsnapshotted.update(touched)
        return result

    def _states_for(
        self, student_ids: set[str], valid: list[tuple[Message, ParsedEvent]], prune_before: int
    ) -> dict[str, StudentState]:
        missing = [sid for sid in student_ids if sid not in self.states]
        if missing:
            partitions = {p.student_id: m.partition for m, p in valid}
            unknown = []
            for sid in missing:
                kept = self.frozen.pop(sid, None)
                if kept is None:
                    unknown.append(sid)
                    continue
                _, version, frozen = kept
                state = self.states[sid] = StudentState.from_dict(sid, decompress_state(frozen))
                state.partition, state.version = partitions[sid], version
            if unknown:
                for state in self._load(unknown, prune_before).values():
                    state.partition = partitions[state.student_id]
        result = {}
        for sid in student_ids:
            self.states.move_to_end(sid)
            result[sid] = self.states[sid]
        return result

    def _load(self, student_ids: list[str], prune_before: int) -> dict[str, StudentState]:
        """Snapshot + the counted events written after it, for each student.

        Students the known-students filter has never held start empty without
        asking the store; the others are looked up.
        """
        known = self._known_students()
        stored: list[str] = []
        for sid in student_ids:
            if known.may_know(sid):
                stored.append(sid)
            else:
                known.add(sid)
        loaded = self.store.load_states(stored) if stored else {}
        states = {sid: loaded.get(sid) or StudentState(student_id=sid) for sid in student_ids}
        replayed = (
            self.store.counted_since({sid: states[sid].version for sid in stored}) if stored else []
        )
        for parsed in replayed:
            states[parsed.student_id].apply(parsed)
        for state in states.values():
            state.prune_recent_ids(prune_before)  # as a state that never left memory
            state.clear_dirty()  # the aggregates already hold these events
            self.states[state.student_id] = state
        self.unsnapshotted.update(p.student_id for p in replayed)
        return states

    def _known_students(self) -> KnownStudents:
        """The filter, (re)built from the store and the states held when missing or full.

        The students of batches not yet written are not in the store yet, but
        their states are held (never evicted or dropped before written), so the
        union misses no one.
        """
        if self.known is None or self.known.overfull:
            known = self.store.known_students()
            known.update(self.states)
            known.update(self.frozen)
            self.known = known
        return self.known

    def forget_known(self) -> None:
        """Read the known students from the store again before the next look-up
        (after a partition assignment: another worker may have written them)."""
        self.known = None

    # --------------------------------------------------------------- snapshots
    def snapshot_rows(self, version: int) -> list[rows.Row]:
        """``student_state`` rows of every state changed since its last snapshot.

        Call between batches only (every applied event is then in ClickHouse);
        ``version`` must be newer than every flush so far.
        """
        packed = self._packed
        snapshot = [
            rows.state_row(self.states[sid], version)
            if sid not in packed
            else rows.packed_state_row(self.states[sid], state_text(packed[sid]), version)
            for sid in self.unsnapshotted
            if sid in self.states
        ]
        self.unsnapshotted.clear()
        # Kept for ``freeze`` only where there is no packed JSON to freeze instead.
        self._snapshot_json = {row[0]: row[2] for row in snapshot if row[0] not in packed}
        return snapshot

    # ------------------------------------------------------------ cache upkeep
    def written(self, result: BatchResult) -> None:
        """The batch's rows are in ClickHouse: its old events are found there now."""
        self.unwritten_old.difference_update(result.old_counted)

    def forget(self, student_ids: Iterable[str]) -> None:
        """Drop cached states (their last batch was not written: reload from the store)."""
        dropped = set(student_ids)
        for sid in dropped:
            self.states.pop(sid, None)
            self.frozen.pop(sid, None)
            self._packed.pop(sid, None)
        self.unwritten_old = {key for key in self.unwritten_old if key[0] not in dropped}

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop states of students whose partition moved to another worker."""
        for sid in [sid for sid, s in self.states.items() if s.partition in partitions]:
            del self.states[sid]
            self._packed.pop(sid, None)
        for sid in [sid for sid, (part, _, _) in self.frozen.items() if part in partitions]:
            del self.frozen[sid]

    def _idle(self, count: int, protect: set[str] | frozenset[str]) -> list[str]:
        """Up to ``count`` least recently used states saved in a snapshot, not in ``protect``."""
        found: list[str] = []
        if count <= 0:
            return found
        unsnapshotted = self.unsnapshotted
        for sid in self.states:  # least recently used first
            if sid not in unsnapshotted and sid not in protect:
                found.append(sid)
                if len(found) >= count:
                    break
        return found

    def freeze(self, protect: set[str] | frozenset[str] = frozenset()) -> int:
        """Keep idle states beyond ``hot_students`` as compressed snapshot JSON, not objects.

        Only states saved in a snapshot (so the JSON is what ClickHouse holds, up
        to its "v": the snapshot's version is kept beside it) and not in
        ``protect`` (the students of a batch not yet written) are frozen.
        """
        texts, self._snapshot_json = self._snapshot_json, {}
        if self.hot_students <= 0:
            return 0
        idle = self._idle(len(self.states) - self.hot_students, protect)
        packed = self._packed
        for sid in idle:
            state = self.states.pop(sid)
            frozen = packed.pop(sid, None) or compress_state(state, texts.get(sid))
            self.frozen[sid] = (state.partition, state.version, frozen)
        return len(idle)

    def evict(self, protect: set[str] | frozenset[str] = frozenset()) -> int:
        """Drop least recently used states beyond the cache size, frozen ones first.

        Only states saved in a snapshot go, and never those in ``protect`` (the
        students of a batch applied but not yet written).
        """
        excess = len(self.states) + len(self.frozen) - self.cache_students
        evicted = 0
        while self.frozen and evicted < excess:
            self.frozen.popitem(last=False)
            evicted += 1
        for sid in self._idle(excess - evicted, protect):
            del self.states[sid]
            self._packed.pop(sid, None)
            evicted += 1
        return evicted
