"""The worker's per-student states in memory, and the policy that bounds their memory.

``StateCache`` holds the states of recently active students. The ``hot_students``
most recently active are kept as objects; older ones, once saved in a snapshot,
are kept frozen as their snapshot JSON compressed with LZ4 (~660 bytes against
~5.7 KiB as objects; 1.6 KiB uncompressed) and thawed when the student is active
again (~16 µs). Beyond ``cache_students`` in all, the least recently used are
dropped (their snapshot is in ClickHouse, and ``streams.processor`` loads them
again when needed).

While states are being frozen (more objects than ``hot_students``), a changed
state's compressed JSON is packed right after its batch (``after_batch``), while
its objects are in the CPU's caches: the snapshot and the freezing reuse it
instead of serialising the state again ~15k states later, when that took ~4x as
long (BENCHMARKS.md, § Ingest). Its "v" is the version of the state's snapshot
before: the snapshot row's text gets the new one, a frozen state keeps it beside.

Only states saved in a snapshot are frozen or dropped, and never those a caller
protects (the students of a batch applied but not yet written): what leaves
memory can always be rebuilt from ClickHouse. No I/O; no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import lz4.block
import orjson

from streams import rows
from streams.student_state import StudentState


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


class StateCache:
    """States as objects (``states``) or frozen (``frozen``), least recently used first."""

    def __init__(self, cache_students: int = 200_000, hot_students: int = 0) -> None:
        self.cache_students = cache_students
        self.hot_students = hot_students  # 0: every cached state stays an object
        self.states: OrderedDict[str, StudentState] = OrderedDict()
        # Idle states as (partition, snapshot version, LZ4-compressed JSON; see
        # ``packed`` for its "v"), least recently used first.
        self.frozen: OrderedDict[str, tuple[int, int, bytes]] = OrderedDict()
        # Students whose state changed since its last snapshot.
        self.unsnapshotted: set[str] = set()
        # The JSON of the states in the last snapshot, until the next ``freeze``.
        self.snapshot_json: dict[str, str] = {}
        # While states are being frozen: a changed state's ``compress_state``, taken
        # right after its batch (see the module).
        self.packed: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self.states) + len(self.frozen)

    def __contains__(self, student_id: str) -> bool:
        return student_id in self.states or student_id in self.frozen

    # ------------------------------------------------------------------ states
    def thaw(self, student_id: str, partition: int) -> StudentState | None:
        """The frozen state of ``student_id`` as an object again (None: not frozen)."""
        kept = self.frozen.pop(student_id, None)
        if kept is None:
            return None
        _, version, frozen = kept
        state = StudentState.from_dict(student_id, decompress_state(frozen))
        state.partition, state.version = partition, version
        self.states[student_id] = state
        return state

    def add(self, state: StudentState) -> None:
        """Hold ``state`` as an object (the most recently used)."""
        self.states[state.student_id] = state

    def use(self, student_ids: Iterable[str]) -> dict[str, StudentState]:
        """The held states of ``student_ids``, marked most recently used."""
        states = self.states
        result = {}
        for sid in student_ids:
            states.move_to_end(sid)
            result[sid] = states[sid]
        return result

    def packing(self) -> bool:
        """True while states are being frozen: changed states are packed (see the module)."""
        return 0 < self.hot_students < len(self.states)

    def after_batch(self, state: StudentState, packing: bool) -> None:
        """``state`` was changed by a batch (its rows taken): pack it now when
        ``packing`` (see the module), else drop an older packed JSON of it."""
        if packing:
            self.packed[state.student_id] = compress_state(state)
        elif self.packed:
            self.packed.pop(state.student_id, None)

    def changed(self, student_ids: Iterable[str]) -> None:
        """These states changed since their last snapshot (by a batch or a replay)."""
        self.unsnapshotted.update(student_ids)

    # --------------------------------------------------------------- snapshots
    def snapshot_rows(self, version: int) -> list[rows.Row]:
        """``student_state`` rows of every state changed since its last snapshot.

        Call between batches only (every applied event is then in ClickHouse);
        ``version`` must be newer than every flush so far.
        """
        packed = self.packed
        snapshot = [
            rows.state_row(self.states[sid], version)
            if sid not in packed
            else rows.packed_state_row(self.states[sid], state_text(packed[sid]), version)
            for sid in self.unsnapshotted
            if sid in self.states
        ]
        self.unsnapshotted.clear()
        # Kept for ``freeze`` only where there is no packed JSON to freeze instead.
        self.snapshot_json = {row[0]: row[2] for row in snapshot if row[0] not in packed}
        return snapshot

    # ------------------------------------------------------------------ memory
    def freeze(self, protect: set[str] | frozenset[str] = frozenset()) -> int:
        """Keep idle states beyond ``hot_students`` as compressed snapshot JSON, not objects.

        Only states saved in a snapshot (so the JSON is what ClickHouse holds, up
        to its "v": the snapshot's version is kept beside it) and not in
        ``protect`` (the students of a batch not yet written) are frozen.
        """
        texts, self.snapshot_json = self.snapshot_json, {}
        if self.hot_students <= 0:
            return 0
        idle = self._idle(len(self.states) - self.hot_students, protect)
        packed = self.packed
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
            self.packed.pop(sid, None)
            evicted += 1
        return evicted

    def forget(self, student_ids: Iterable[str]) -> None:
        """Drop these states whatever they are (reload them from the store)."""
        for sid in student_ids:
            self.states.pop(sid, None)
            self.frozen.pop(sid, None)
            self.packed.pop(sid, None)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop states of students whose partition moved to another worker."""
        for sid in [sid for sid, s in self.states.items() if s.partition in partitions]:
            del self.states[sid]
            self.packed.pop(sid, None)
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
