"""The pure half of the full quixstreams peer (``bench/quix_full.py``): no quixstreams here.

``process_message`` is the peer's per-message step: it validates one
``learning-events`` message with the project's ``parse_event`` (plus the worker's
key check), drops a duplicate by an ``id:<eventId>`` key of the student's keyed
state (exact, no time horizon), and applies the event to the student's
``StudentState``, loaded from and stored back to the keyed state as its
``to_dict`` (the store serialises it as JSON: tuples come back as lists, which
``StudentState.from_dict`` accepts). It returns an ``Outcome``, which the sink
receives as it is (a BatchingSink keeps Python objects until the checkpoint).

``batch_tables`` is what the sink makes of one ``write(batch)``: per student, the
latest state of the batch with the union of the dirty courses and days of that
student's messages (each message's state is rebuilt from the store, so it carries
only its own), then the worker's rows: ``streams.rows.student_rows`` per student
and ``streams.rows.event_row`` per counted event, plus ``dead_letters`` rows.

The state object of each ``Outcome`` is built fresh for that message and never
changed after it was returned, so the batch's objects are independent; only the
latest one of each student is used for rows, and its dirty sets are replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.dead_letter import DeadLetter
from schemas.errors import InvalidMessage
from schemas.events import ParsedEvent, parse_event
from streams import rows
from streams.processor import KEY_MISMATCH, Message, dead_letter, dead_letter_row
from streams.student_state import StudentState

STATE_KEY = "s"  # the student's StudentState.to_dict()
SEEN_PREFIX = "id:"  # one key per counted event id
MAX_FUTURE = dt.timedelta(seconds=86400)  # the worker's default EDUKNIT_MAX_FUTURE_SECONDS


class KeyedState(Protocol):
    """What the step needs of quixstreams' ``State`` (one message key's part of the store)."""

    def get(self, key: Any, default: Any = None) -> Any: ...

    def set(self, key: Any, value: Any) -> None: ...


@dataclass(slots=True)
class Outcome:
    """What one message did: counted (``state`` and ``parsed``), a duplicate, or invalid."""

    partition: int
    offset: int
    state: StudentState | None = None  # the student's state after this event (counted only)
    parsed: ParsedEvent | None = None
    letter: DeadLetter | None = None  # invalid only

    @property
    def counted(self) -> bool:
        return self.state is not None


def process_message(
    value: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    state: KeyedState,
    now: dt.datetime,
) -> Outcome:
    """Validate, drop a duplicate, apply: the peer's work for one message."""
    try:
        parsed = parse_event(value, now=now, max_future=MAX_FUTURE)
        if key != parsed.student_id.encode():
            raise InvalidMessage(KEY_MISMATCH, field="key")
    except InvalidMessage as error:
        letter = dead_letter(Message(topic, partition, offset, key, value), error, now)
        return Outcome(partition, offset, letter=letter)
    seen_key = SEEN_PREFIX + parsed.event_id
    if state.get(seen_key):
        return Outcome(partition, offset)
    state.set(seen_key, 1)
    stored = state.get(STATE_KEY)
    if stored is None:
        student = StudentState(student_id=parsed.student_id, partition=partition)
    else:
        student = StudentState.from_dict(parsed.student_id, stored)
    student.apply(parsed)
    # Duplicates are the ``id:`` keys' job: the state does not keep the ids as well.
    student.recent_ids.clear()
    state.set(STATE_KEY, student.to_dict())
    return Outcome(partition, offset, state=student, parsed=parsed)


@dataclass(slots=True)
class BatchTables:
    """The rows of one sink write and what its messages were."""

    tables: dict[str, list[rows.Row]] = field(default_factory=dict)
    messages: int = 0
    counted: int = 0
    duplicates: int = 0
    letters: list[DeadLetter] = field(default_factory=list)
    students: int = 0


def merge_students(outcomes: Iterable[Outcome]) -> dict[str, StudentState]:
    """Per student, the batch's latest state carrying the union of the dirty courses and
    days of all that student's messages in the batch (the latest state's own sets are
    replaced; the earlier states are left as they are)."""
    latest: dict[str, StudentState] = {}
    courses: dict[str, set[str]] = {}
    days: dict[str, set[tuple[int, str]]] = {}
    for outcome in outcomes:
        state = outcome.state
        if state is None:
            continue
        sid = state.student_id
        latest[sid] = state
        if state.dirty_courses:
            courses.setdefault(sid, set()).update(state.dirty_courses)
        if state.dirty_days:
            days.setdefault(sid, set()).update(state.dirty_days)
    merged: dict[str, StudentState] = {}
    for sid, state in latest.items():
        # Sets of this function's own: the earlier messages' states keep theirs.
        state.dirty_courses = courses.get(sid)
        state.dirty_days = days.get(sid)
        merged[sid] = state
    return merged


def batch_tables(outcomes: Iterable[Outcome], now: dt.datetime, version: int) -> BatchTables:
    """Every row one sink write inserts, built as the worker builds them."""
    result = BatchTables()
    event_rows: list[rows.Row] = []
    counted: list[Outcome] = []
    for outcome in outcomes:
        result.messages += 1
        if outcome.letter is not None:
            result.letters.append(outcome.letter)
        elif outcome.parsed is None:
            result.duplicates += 1
        else:
            counted.append(outcome)
            event_rows.append(
                rows.event_row(outcome.parsed, outcome.partition, outcome.offset, now, version)
            )
    result.counted = len(counted)
    course_rows: list[rows.Row] = []
    day_rows: list[rows.Row] = []
    summary_rows: list[rows.Row] = []
    dashboard_rows: list[rows.Row] = []
    students = merge_students(counted)
    for state in students.values():
        courses, days, summary, dashboard = rows.student_rows(state, now, version)
        course_rows += courses
        day_rows += days
        summary_rows.append(summary)
        dashboard_rows.append(dashboard)
    result.students = len(students)
    tables = result.tables
    if result.letters:
        tables["dead_letters"] = [dead_letter_row(letter) for letter in result.letters]
    if counted:
        tables["student_courses"] = course_rows
        tables["student_course_daily"] = day_rows
        tables["student_summary"] = summary_rows
        tables["student_dashboard"] = dashboard_rows
        tables["learning_events"] = event_rows
    return result
