"""Course catalog messages to ``course_catalog`` rows (pure logic).

A message replaces the course's earlier entry (a higher version wins in
ClickHouse); a tombstone (no value) marks the course deleted; an invalid
message becomes a dead letter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from schemas.catalog import parse_catalog
from schemas.dead_letter import DeadLetter
from schemas.errors import InvalidMessage
from streams.processor import Message, dead_letter
from streams.rows import Row


def catalog_rows(
    messages: list[Message], now: dt.datetime, next_version: Callable[[], int]
) -> tuple[list[Row], list[DeadLetter]]:
    """Rows for ``course_catalog`` and dead letters for one batch, in message order."""
    rows: list[Row] = []
    letters: list[DeadLetter] = []
    for message in messages:
        if message.value is None:
            if not message.key:
                letters.append(dead_letter(message, InvalidMessage("tombstone without key"), now))
                continue
            course_id = message.key.decode("utf-8", errors="replace")
            rows.append([course_id, "", 0, [], 0, 1, now, next_version()])
            continue
        try:
            entry = parse_catalog(message.value)
        except InvalidMessage as error:
            letters.append(dead_letter(message, error, now))
            continue
        listed = entry.lessons is not None
        rows.append([
            entry.course_id, entry.title, entry.total_lessons, list(entry.lessons or ()),
            1 if listed else 0, 0, now, next_version(),
        ])  # fmt: skip
    return rows, letters
