"""The API for the leaderboard benchmark, plus routes that write points as the worker would.

``python -m bench.leaderboard_server`` (environment as for ``eduknit.cli api``:
``EDUKNIT_DATA_DIR``, ``EDUKNIT_API_PORT``, ``EDUKNIT_JWT_SECRET``) serves the
project's app (``api.main.create_app``: the same routes, kept rankings, change
feed) on the embedded ClickHouse of that data dir. The embedded engine allows
one process per data directory, so the writes the benchmark needs run here too,
as the worker's do under ``make run`` (worker and API in one process), on a
connection of their own.

A learner earning points is written as the worker writes it: whole rows with a
new version, in the worker's order: the ``student_course_daily`` row of
(learner, today's UTC date, course) with the points added (the materialized
view of migration 0007 copies it into ``leaderboard_points``), the
``student_summary`` row with the new total, then the ``student_dashboard`` row
(what the change feed watches). Like the worker, the writer knows the rows
without reading them: it reads every learner's total once, and writes the
summaries' other columns and the dashboard payload from one learner's rows
(the same sizes; this benchmark reads no dashboard).

- ``POST /bench/award?student=s0000042&course=course-007&points=10``: one
  learner earns points in one of their courses (that day's row is read first,
  as a state would hold it). Answers once written.
- ``POST /bench/traffic?rate=1000`` starts a thread awarding 10 points to
  ``rate`` random learners a second, in batches every 0.1 s, in a course of its
  own (``course-bench``: the writer wrote every row of it, so it knows them);
  ``rate=0`` stops it; ``GET /bench/traffic`` says how many were written.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.main import create_app
from bench.api_server import NoPublisher
from eduknit.cli import API_HTTP
from infra.clickhouse import open_client, shared_client
from infra.settings import get_settings
from streams.rows import COLUMNS

DAY_ROW_SQL = (
    "SELECT * FROM student_course_daily FINAL WHERE student_id = {student:String} "
    "AND local_date = {day:Date} AND course_id = {course:String}"
)
TOTALS_SQL = "SELECT student_id, total_points FROM student_summary FINAL"
TEMPLATE_SQL = "SELECT * FROM {table:Identifier} FINAL LIMIT 1"
BENCH_COURSE = "course-bench"


class Writer:
    """Worker-like writes of points (see the module); one write at a time."""

    def __init__(self, client: Any, students: int) -> None:
        self.client = client
        self.students = students
        self.lock = threading.Lock()
        self.written = 0
        self.totals: dict[str, int] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.bench_days: dict[tuple[str, dt.date], int] = {}  # lessons written in BENCH_COURSE
        self._traffic: threading.Thread | None = None
        self._stop = threading.Event()

    def load(self) -> None:
        """Every learner's total, and one learner's summary and dashboard rows."""
        self.totals = {sid: int(total) for sid, total in self.client.query(TOTALS_SQL).result_rows}
        for table in ("student_summary", "student_dashboard"):
            result = self.client.query(TEMPLATE_SQL, parameters={"table": table})
            row = result.result_rows[0]
            self.templates[table] = dict(zip(result.column_names, row, strict=True))

    # ---------------------------------------------------------------- writes
    def award(self, student: str, course: str, points: int) -> None:
        """``points`` more today for ``student`` in one of their courses."""
        day = dt.datetime.now(dt.UTC).date()
        with self.lock:
            version = time.time_ns()
            found = self.client.query(DAY_ROW_SQL, parameters={
                "student": student, "day": day, "course": course,
            })  # fmt: skip
            columns = COLUMNS["student_course_daily"]
            if found.result_rows:
                row = dict(zip(found.column_names, found.result_rows[0], strict=True))
            else:
                row = dict.fromkeys(columns, 0) | {"first_completion_at": None}
            row |= {"student_id": student, "local_date": day, "course_id": course,
                    "lessons_completed": row["lessons_completed"] + 1,
                    "completions": row["completions"] + 1, "points": row["points"] + points,
                    "version": version}  # fmt: skip
            self.client.insert("student_course_daily", [[row[c] for c in columns]],
                               column_names=columns)  # fmt: skip
            self._summaries_and_dashboards([student], points, version)

    def _bench_lessons(self, ids: list[str], day: dt.date, version: int) -> None:
        rows = []
        for student in ids:
            lessons = self.bench_days[student, day] = self.bench_days.get((student, day), 0) + 1
            rows.append([student, day, BENCH_COURSE, 5.0 * lessons, lessons, lessons, 0, 0.0,
                         10 * lessons, None, version])  # fmt: skip
        self.client.insert("student_course_daily", rows,
                           column_names=COLUMNS["student_course_daily"])  # fmt: skip

    def _summaries_and_dashboards(self, ids: list[str], points: int, version: int) -> None:
        summary, dashboard = self.templates["student_summary"], self.templates["student_dashboard"]
        summaries = []
        for student in ids:
            total = self.totals[student] = self.totals.get(student, 0) + points
            summaries.append(summary | {"student_id": student, "total_points": total,
                                        "level": total // 100 + 1, "version": version})  # fmt: skip
        names = list(summary)
        self.client.insert("student_summary", [[s[c] for c in names] for s in summaries],
                           column_names=names)  # fmt: skip
        self.client.insert("student_dashboard",
                           [[student, dashboard["payload"], version] for student in ids],
                           column_names=["student_id", "payload", "version"])  # fmt: skip
        self.written += len(ids)

    # --------------------------------------------------------------- traffic
    def start_traffic(self, rate: float) -> None:
        self.stop_traffic()
        if rate <= 0:
            return
        self._stop.clear()
        self._traffic = threading.Thread(target=self._run, args=(rate,), daemon=True)
        self._traffic.start()

    def stop_traffic(self) -> None:
        self._stop.set()
        if self._traffic is not None:
            self._traffic.join(10)
            self._traffic = None

    def _run(self, rate: float) -> None:
        rng = random.Random(5)
        per_batch = max(1, round(rate / 10))
        next_at = time.monotonic()
        while not self._stop.is_set():
            day = dt.datetime.now(dt.UTC).date()
            batch = sorted({f"s{rng.randrange(self.students):07d}" for _ in range(per_batch)})
            with self.lock:
                version = time.time_ns()
                self._bench_lessons(batch, day, version)
                self._summaries_and_dashboards(batch, 10, version)
            next_at += 0.1
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def add_bench_routes(app: FastAPI, writer: Writer) -> None:
    @app.post("/bench/award")
    def award(student: str, course: str, points: int = 10) -> dict[str, Any]:
        writer.award(student, course, points)
        return {"written": time.time()}

    @app.post("/bench/traffic")
    def traffic(rate: float = 0) -> dict[str, Any]:
        writer.start_traffic(rate)
        return {"rate": rate}

    @app.get("/bench/traffic")
    def traffic_count() -> dict[str, Any]:
        return {"written": writer.written}


def main() -> int:
    settings = get_settings()
    client = shared_client(settings.resolved_clickhouse_url)
    students = int(client.query("SELECT count() FROM student_summary FINAL").result_rows[0][0])
    writer = Writer(open_client(settings.resolved_clickhouse_url), students)
    writer.load()
    app = create_app(settings, client, NoPublisher())
    add_bench_routes(app, writer)
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                    access_log=False, http=API_HTTP)  # fmt: skip
    finally:
        writer.stop_traffic()
    return 0


if __name__ == "__main__":
    sys.exit(main())
