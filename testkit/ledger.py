"""What the pipeline counted, read from ClickHouse after a stack stopped, vs. what was sent.

The embedded engine allows one process per data directory, so the read runs in
a child process (``python -m testkit.ledger DATA_DIR STUDENTS_JSON``) once
the stack is stopped. Per student it returns the distinct event ids in
``learning_events`` (the record of every counted event) and the additive sums
of ``student_course_daily`` (quiz attempts, lesson completions, minutes): an
event applied twice shows up there as one attempt or completion too many.

``tally`` compares that with the events sent: events counted, lost (sent,
distinct, never counted) and duplicates counted (extra attempts/completions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the repository (testkit/ is at its top)

_EVENTS_SQL = (
    "SELECT student_id, groupUniqArray(event_id) FROM learning_events FINAL "
    "WHERE student_id IN {ids:Array(String)} GROUP BY student_id"
)
_DAILY_SQL = (
    "SELECT student_id, sum(quizzes_completed), sum(completions), sum(minutes) "
    "FROM student_course_daily FINAL WHERE student_id IN {ids:Array(String)} GROUP BY student_id"
)


@dataclass(slots=True)
class Tally:
    """One fault's line of the chaos table."""

    sent: int = 0
    unique: int = 0
    counted: int = 0
    duplicates_counted: int = 0
    lost: int = 0
    minutes_off: int = 0  # students whose minute sum differs from the events'


def read_counted(data_dir: Path, students: list[str]) -> dict[str, Any]:
    """Run the ClickHouse read in a child process (the stack must be stopped)."""
    ids_file = data_dir / "ledger-students.json"
    ids_file.write_text(json.dumps(students))
    out = subprocess.run(
        [sys.executable, "-m", "testkit.ledger", str(data_dir), str(ids_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def tally(sent: dict[str, list[dict[str, Any]]], counted: dict[str, Any], messages: int) -> Tally:
    """Compare what was sent (duplicates included) with what ClickHouse counted."""
    result = Tally(sent=messages)
    for student, events in sent.items():
        unique = {e["eventId"]: e for e in events}
        result.unique += len(unique)
        seen = set(counted["events"].get(student, []))
        result.counted += len(seen & set(unique))
        result.lost += len(set(unique) - seen)
        quizzes = sum(1 for e in unique.values() if e["type"] == "quiz_completed")
        completions = sum(
            1 for e in unique.values() if e["type"] == "lesson_progress" and e.get("completed")
        )
        minutes = sum(
            Decimal(str(e.get("timeSpent", 0)))
            for e in unique.values()
            if e["type"] in ("lesson_progress", "quiz_completed")
        )
        got_quizzes, got_completions, got_minutes = counted["daily"].get(student, [0, 0, 0])
        result.duplicates_counted += max(0, got_quizzes - quizzes)
        result.duplicates_counted += max(0, got_completions - completions)
        if abs(Decimal(str(got_minutes)) - minutes) > Decimal("0.001"):
            result.minutes_off += 1
    return result


def main(data_dir: str, ids_path: str) -> None:
    from infra.clickhouse import connect

    students = json.loads(Path(ids_path).read_text())
    client = connect(f"chdb://{Path(data_dir).resolve() / 'clickhouse'}")
    events: dict[str, list[str]] = {}
    daily: dict[str, list[float]] = {}
    for start in range(0, len(students), 1000):
        chunk = students[start : start + 1000]
        for sid, ids in client.query(_EVENTS_SQL, parameters={"ids": chunk}).result_rows:
            events[sid] = list(ids)
        for sid, q, c, m in client.query(_DAILY_SQL, parameters={"ids": chunk}).result_rows:
            daily[sid] = [int(q), int(c), float(m)]
    client.close()
    print(json.dumps({"events": events, "daily": daily}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
