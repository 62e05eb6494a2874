"""The read-only queries of the operations tools (check, resync), named, with their rows.

The command line reads ClickHouse directly when it can, or through the running
process's admin endpoint (``api.routes.admin``) when that process holds the
embedded engine; both run exactly these queries, so both give the same rows.
Each query returns JSON-friendly values only (strings, integers, floats, None):
dates as day numbers, times as epoch milliseconds.

A query selects students either by a list (``ids``) or by an inclusive range of
ids (``first``..``last``: the per-student tables are ordered by student first,
so a range reads only its granules).
"""

from __future__ import annotations

from typing import Any

# Columns of a counted event (streams.consistency.event_from_row reads them in this order).
EVENT_COLUMNS = (
    "event_id, student_id, type, course_id, module_id, lesson_id, quiz_id, "
    "toUnixTimestamp64Milli(occurred_at), toUInt16(local_date), timezone, completed, "
    "time_spent_minutes, progress, score, batch_version"
)
DATASETS: dict[str, str] = {
    # Every student with a counted event, sorted.
    "students": "SELECT DISTINCT student_id FROM learning_events ORDER BY student_id",
    # A random sample of them ({n:UInt32} students).
    "sample": (
        "SELECT student_id FROM (SELECT DISTINCT student_id FROM learning_events) "
        "ORDER BY rand() LIMIT {n:UInt32}"
    ),
    # The counted events of the selected students (a replayed batch may still be there
    # twice until a merge: the reader drops repeated event ids).
    "events": f"SELECT {EVENT_COLUMNS} FROM learning_events WHERE {{where}}",
    # What the API serves from: the dashboard payload and its version.
    "dashboards": "SELECT student_id, payload, version FROM student_dashboard FINAL WHERE {where}",
    # Counted events per student (all students without a selection), sorted.
    "counts": (
        "SELECT student_id, count() FROM learning_events {where_clause} "
        "GROUP BY student_id ORDER BY student_id"
    ),
    # The whole catalog.
    "catalog": "SELECT course_id, title, total_lessons, deleted FROM course_catalog FINAL",
}
BY_IDS = "student_id IN {ids:Array(String)}"
BY_RANGE = "student_id >= {first:String} AND student_id <= {last:String}"
MAX_IDS = 10_000  # students one request may name


def by_ids(ids: list[str]) -> dict[str, Any]:
    """Select these students."""
    return {"ids": list(ids)}


def by_range(first: str, last: str) -> dict[str, Any]:
    """Select the students with ids from ``first`` to ``last`` (inclusive)."""
    return {"first": first, "last": last}


def statement(dataset: str, selection: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of ``dataset`` for ``selection``; ``ValueError`` when invalid."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")
    sql = DATASETS[dataset]
    selection = selection or {}
    if dataset == "sample":
        n = selection.get("n")
        if not isinstance(n, int) or not 1 <= n <= MAX_IDS:
            raise ValueError(f"sample needs n, 1-{MAX_IDS}")
        return sql, {"n": n}
    if "{where_clause}" in sql:
        if not selection:
            return sql.replace("{where_clause}", ""), {}
        sql = sql.replace("{where_clause}", "WHERE {where}")
    if "{where}" not in sql:
        return sql, {}
    ids = selection.get("ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("ids must be a list of student ids")
        if len(ids) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} ids per request")
        return sql.replace("{where}", BY_IDS), {"ids": ids}
    first, last = selection.get("first"), selection.get("last")
    if isinstance(first, str) and isinstance(last, str):
        return sql.replace("{where}", BY_RANGE), {"first": first, "last": last}
    raise ValueError(f"{dataset} needs ids, or first and last")
