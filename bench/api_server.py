"""The API for the read benchmark, plus the "recompute per request" baseline routes.

``python -m bench.api_server`` (environment as for ``eduknit.cli api``:
``EDUKNIT_DATA_DIR``, ``EDUKNIT_API_PORT``, ``EDUKNIT_JWT_SECRET``) serves the
project's own app (``api.main.create_app``, the same routes, auth and read path)
on the embedded ClickHouse of that data dir, with a publisher that refuses
writes (the read benchmark needs no Kafka), and adds two baseline routes:

- ``GET /bench/recompute/realtime`` and ``GET /bench/recompute/statistics?days=N``:
  the same dashboards computed on every request from the raw events alone, as a
  design without aggregates would: one SQL query reads the student's rows of
  ``learning_events FINAL`` (with the catalog joined), and the contract's rules are
  replayed in Python by ``testkit/reference.py`` (the independent model the tests
  compare the API with, so the answers are the same). Same auth, same thread pool.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Query

from api.deps import ClientDep, CurrentPrincipal
from api.main import create_app
from eduknit.cli import API_HTTP
from infra.clickhouse import shared_client
from infra.settings import get_settings
from testkit.reference import Reference

RAW_SQL = """
SELECT e.event_id, e.type, e.course_id, e.lesson_id, e.quiz_id, e.occurred_at, e.timezone,
       e.completed, e.time_spent_minutes, e.progress, e.score, c.title, c.total_lessons
FROM (SELECT * FROM learning_events FINAL WHERE student_id = {student:String}) AS e
LEFT JOIN (SELECT course_id, title, total_lessons FROM course_catalog FINAL WHERE NOT deleted)
    AS c ON c.course_id = e.course_id
SETTINGS join_use_nulls = 1
"""


class NoPublisher:
    """Writes are not part of the read benchmark."""

    async def publish(self, student_id: str, event: dict[str, Any]) -> None:
        raise RuntimeError("the read benchmark server does not produce events")

    def ready(self) -> bool:
        return True


def _reference(client: Any, student: str) -> Reference:
    rows = client.query(RAW_SQL, parameters={"student": student}).result_rows
    events: list[dict[str, Any]] = []
    catalog: dict[str, tuple[str, int]] = {}
    for (event_id, kind, course, lesson, quiz, at, zone, completed, minutes, progress, score,
         title, total) in rows:  # fmt: skip
        event: dict[str, Any] = {
            "eventId": event_id, "type": kind, "courseId": course, "lessonId": lesson,
            "quizId": quiz, "occurredAt": at.isoformat(), "completed": bool(completed),
            "timeSpent": minutes, "progress": progress, "score": score,
        }  # fmt: skip
        if zone[:1] not in "+-":
            event["timezone"] = zone
        events.append(event)
        if title is not None:
            catalog[course] = (title, int(total))
    return Reference(events, catalog)


def add_recompute_routes(app: FastAPI) -> None:
    @app.get("/bench/recompute/realtime")
    def recompute_realtime(principal: CurrentPrincipal, client: ClientDep) -> dict[str, Any]:
        ref = _reference(client, principal.subject)
        today = ref.today(dt.datetime.now(dt.UTC))
        return {"studentId": principal.subject, "courses": ref.courses(),
                "weeklyActivity": ref.weekly(today), "summary": ref.summary(today),
                "recentActivity": ref.recent()}  # fmt: skip

    @app.get("/bench/recompute/statistics")
    def recompute_statistics(
        principal: CurrentPrincipal, client: ClientDep, days: int = Query(30, ge=1, le=365)
    ) -> dict[str, Any]:
        ref = _reference(client, principal.subject)
        today = ref.today(dt.datetime.now(dt.UTC))
        return {"studentId": principal.subject, **ref.statistics(today, days)}


def main() -> int:
    settings = get_settings()
    client = shared_client(settings.resolved_clickhouse_url)
    app = create_app(settings, client, NoPublisher())
    add_recompute_routes(app)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                access_log=False, http=API_HTTP)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
