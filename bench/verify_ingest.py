"""Correctness of an ingest run, read from the worker's ClickHouse after it exited.

``python -m bench.verify_ingest DATA_DIR EXPECTED.json`` (a separate process: the
embedded engine allows one process per data directory) checks

- ``learning_events``: one row per unique event id;
- every student's total points (``student_summary``) and minutes per local date
  (``student_course_daily``) against the workload's own expectation;
- for the sample students, the whole /realtime and /statistics?days=30 answers
  (built by the API's own ``api.views`` on this data) field by field against
  ``testkit/reference.py``;

and prints ``BENCH-RESULT {json}`` with the counts of mismatches.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from api.views import realtime_view, statistics_view
from infra.clickhouse import connect
from testkit.compare import (
    expected_realtime,
    expected_statistics,
)
from testkit.compare import (
    realtime_view as comparable_realtime,
)
from testkit.compare import (
    statistics_view as comparable_statistics,
)

TOLERANCE = 1e-6


def _diff(got: dict[str, Any], want: dict[str, Any]) -> str:
    """The first differing field, short."""
    for key in sorted(set(got) | set(want)):
        if got.get(key) != want.get(key):
            return f"{key}: got {str(got.get(key))[:300]} want {str(want.get(key))[:300]}"
    return "?"


def verify(data_dir: Path, expected: dict[str, Any]) -> dict[str, Any]:
    client = connect(f"chdb://{data_dir / 'clickhouse'}", attempts=3)
    unique = client.query("SELECT uniqExact(event_id) FROM learning_events").result_rows[0][0]
    rows = client.query("SELECT count() FROM learning_events FINAL").result_rows[0][0]
    points = dict(
        client.query("SELECT student_id, total_points FROM student_summary FINAL").result_rows
    )
    minutes: dict[str, dict[str, float]] = defaultdict(dict)
    for sid, day, value in client.query(
        "SELECT student_id, local_date, sum(minutes) FROM student_course_daily FINAL "
        "GROUP BY student_id, local_date HAVING sum(minutes) > 0"
    ).result_rows:
        minutes[sid][day.isoformat()] = value

    bad_points = [s for s, p in expected["points"].items() if points.get(s, 0) != p]
    bad_minutes = []
    for sid, days in expected["minutes"].items():
        want = {d: m for d, m in days.items() if m > 0}
        got = minutes.get(sid, {})
        if set(want) != set(got) or any(abs(got[d] - m) > TOLERANCE for d, m in want.items()):
            bad_minutes.append(sid)

    catalog = {k: tuple(v) for k, v in expected["catalog"].items()}
    now = dt.datetime.now(dt.UTC)
    bad_sample: list[str] = []
    for sid, events in expected["sample"].items():
        body = realtime_view(client, sid, None, now).model_dump(by_alias=True, mode="json")
        got = comparable_realtime(body)
        want = expected_realtime(sid, events, catalog, now)  # type: ignore[arg-type]
        if got != want:
            bad_sample.append(f"{sid} realtime: {_diff(got, want)}")
        stats = statistics_view(client, sid, 30, None, now).model_dump(by_alias=True, mode="json")
        got = comparable_statistics(stats)
        want = expected_statistics(sid, events, catalog, now, 30)  # type: ignore[arg-type]
        if got != want:
            bad_sample.append(f"{sid} statistics: {_diff(got, want)}")
    return {
        "unique_events": unique, "rows_final": rows, "expected_unique": expected["unique"],
        "students": len(expected["points"]), "bad_points": len(bad_points),
        "bad_minutes": len(bad_minutes), "sample_students": len(expected["sample"]),
        "bad_sample": bad_sample[:10], "bad_sample_count": len(bad_sample),
        "examples": (bad_points[:3] + bad_minutes[:3]),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    expected = json.loads(Path(args[1]).read_text())
    result = verify(Path(args[0]), expected)
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
