"""Which students ClickHouse may hold anything for: a Bloom filter over student ids.

A batch needs the saved state of every student it touches that is not in
memory. Most such students in a growing deployment have never been seen, and
asking ClickHouse about them (snapshot, then the events written after it) was
the larger part of a batch's time. ``KnownStudents`` answers "never seen" without
a query: a Bloom filter has no false negatives, so a student it does not hold
has no row anywhere; a false positive (about 1 in 100) only costs the look-up
that every student paid before.

It is filled from ``student_summary`` and ``student_state`` (a flush writes a
student's summary before its ``learning_events``, and a snapshot only after
them, so every student with counted events or a snapshot is there) and from the
ids the processor holds, and every
student the processor starts a state for is added. It is rebuilt when it is
fuller than it was sized for and after partitions are assigned (another worker
may have written their students).
"""

from __future__ import annotations

from collections.abc import Iterable

from rbloom import Bloom

FALSE_POSITIVE_RATE = 0.01
MIN_CAPACITY = 1_000_000  # ~1.2 MB at 1 %


class KnownStudents:
    """A Bloom filter of student ids sized for ``capacity`` ids at a 1 % false-positive rate."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, MIN_CAPACITY)
        self.added = 0
        self._filter = Bloom(self.capacity, FALSE_POSITIVE_RATE)

    @classmethod
    def of(cls, student_ids: Iterable[str], expected: int) -> KnownStudents:
        """A filter holding ``student_ids``, with room for twice ``expected`` ids."""
        known = cls(2 * expected)
        known.update(student_ids)
        return known

    def may_know(self, student_id: str) -> bool:
        """False only if ``student_id`` was never added."""
        return student_id in self._filter

    def add(self, student_id: str) -> None:
        self._filter.add(student_id)
        self.added += 1

    def update(self, student_ids: Iterable[str]) -> None:
        for student_id in student_ids:
            self.add(student_id)

    @property
    def overfull(self) -> bool:
        """More ids were added than it was sized for: false positives grow from here."""
        return self.added > self.capacity
