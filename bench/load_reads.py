"""Fill an embedded ClickHouse with N students and M events for the read benchmark.

``python -m bench.load_reads DATA_DIR --students 100000 --events 10000000`` (its
own process: one process per chdb data directory) applies the migrations, then
writes the tables straight with ``INSERT ... SELECT`` (10M rows load in a few
minutes on 2 cores; producing them through the worker would take far longer):

- ``learning_events``: M events, M/N per student over the last 365 days up to
  now, in three time zones, each student in 3 of the catalog's courses: an
  enrollment per course first, then ~75 % lesson progress (60 % completing a
  lesson, every lesson id new) and ~25 % quizzes (every quiz id new, so each
  completion is a first completion and each quiz's points are floor(score/10));
- the aggregates the worker would write for exactly those events
  (``student_courses``, ``student_course_daily``, ``student_summary``) computed
  from ``learning_events`` with GROUP BY, the ``student_dashboard`` payloads the
  API reads built from those three in the worker's JSON shape
  (``streams.rows.student_rows``), and the catalog of ``testkit.workload``.

``--granularity N`` (an experiment, not the project's schema) recreates the
aggregate tables with ``index_granularity = N`` first. Prints
``BENCH-RESULT {json}`` with row counts and seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from infra.clickhouse import connect, migrate
from testkit.workload import make_catalog

ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo")

EVENTS_SQL = """
INSERT INTO learning_events
SELECT
    concat('r', toString(n)) AS event_id,
    concat('s', leftPad(toString(s), 7, '0')) AS student_id,
    kind AS type,
    concat('course-', leftPad(toString((s * 7 + (j % 3) * 13) % {courses} + 1), 3, '0')),
    NULL,
    if(kind = 'lesson_progress', concat('lesson-', toString(j)), NULL),
    if(kind = 'quiz_completed', concat('quiz-', toString(j)), NULL),
    at,
    multiIf(s % 3 = 0, toDate(at, '{z0}'), s % 3 = 1, toDate(at, '{z1}'), toDate(at, '{z2}')),
    multiIf(s % 3 = 0, '{z0}', s % 3 = 1, '{z1}', '{z2}'),
    kind = 'lesson_progress' AND h % 10 < 6,
    if(kind IN ('lesson_progress', 'quiz_completed'), toFloat64(5 + h % 40), 0.),
    NULL,
    if(kind = 'quiz_completed', toFloat64(40 + intDiv(h, 7) % 61), NULL),
    s % 8, n, now64(3), 1
FROM (
    SELECT number AS n, number % {students} AS s, intDiv(number, {students}) AS j,
           cityHash64(number) AS h,
           toDateTime64({now} - ({per} - 1 - j) * {step} - h % 3600, 3, 'UTC') AS at,
           multiIf(j < 3, 'enrolled', h % 100 < 75, 'lesson_progress', 'quiz_completed') AS kind
    FROM numbers({events})
)
"""

POINTS = "multiIf(type = 'lesson_progress' AND completed, 10, " \
    "type = 'quiz_completed', toInt32(intDiv(toUInt32(assumeNotNull(score)), 10)), 0)"  # fmt: skip

COURSES_SQL = """
INSERT INTO student_courses
SELECT student_id, course_id, 1, min(occurred_at),
       countIf(type = 'lesson_progress' AND completed),
       arraySort(groupArrayIf(occurred_at, type = 'lesson_progress' AND completed)),
       NULL, NULL, sum(time_spent_minutes),
       if(countIf(type IN ('lesson_progress', 'quiz_completed')) > 0,
          maxIf(occurred_at, type IN ('lesson_progress', 'quiz_completed')), NULL),
       now64(3), 1
FROM learning_events GROUP BY student_id, course_id
"""

DAILY_SQL = f"""
INSERT INTO student_course_daily
SELECT student_id, local_date, course_id, sum(time_spent_minutes),
       countIf(type = 'lesson_progress' AND completed),
       countIf(type = 'lesson_progress' AND completed),
       countIf(type = 'quiz_completed'), sumIf(score, type = 'quiz_completed'),
       sum({POINTS}),
       if(countIf(type = 'lesson_progress' AND completed) > 0,
          minIf(occurred_at, type = 'lesson_progress' AND completed), NULL),
       1
FROM learning_events WHERE type IN ('lesson_progress', 'quiz_completed')
GROUP BY student_id, local_date, course_id
"""

RECENT_TYPE = (
    "Tuple(eventId String, type String, courseId String, lessonId Nullable(String), "
    "quizId Nullable(String), occurredAt String, pointsAwarded Int32)"
)
SUMMARY_SQL = f"""
INSERT INTO student_summary
SELECT student_id, total, intDiv(total, 100) + 1, active, levels, last_at, tz, n, recent,
       now64(3), 1
FROM (
    SELECT student_id, sum(p) AS total,
           arraySort(groupUniqArrayIf(local_date, type = 'lesson_progress' AND completed))
               AS active,
           arraySort(x -> x.1, groupArray((occurred_at, p))) AS timeline,
           arrayCumSum(arrayMap(x -> x.2, timeline)) AS cum,
           arrayFilter((t, c, q) -> intDiv(c, 100) > intDiv(c - q, 100),
                       arrayMap(x -> x.1, timeline), cum, arrayMap(x -> x.2, timeline)) AS levels,
           max(occurred_at) AS last_at, argMax(timezone, occurred_at) AS tz, count() AS n,
           concat('[', arrayStringConcat(arrayMap(x -> toJSONString(CAST(
               (x.2, x.3, x.4, x.5, x.6, formatDateTime(x.1, '%Y-%m-%dT%H:%i:%SZ', 'UTC'), x.7),
               '{RECENT_TYPE}')),
               arraySlice(arrayReverseSort(x -> (x.1, x.2), groupArray(
                   (occurred_at, event_id, toString(type), course_id, lesson_id, quiz_id, p))),
                   1, 10)), ','), ']') AS recent
    FROM (SELECT *, {POINTS} AS p FROM learning_events)
    GROUP BY student_id
)
"""


_MS = "toUnixTimestamp64Milli"
DASHBOARD_SQL = f"""
INSERT INTO student_dashboard
SELECT s.student_id,
       concat('[', toString(s.total_points), ',', toJSONString(s.active_days), ',',
              toJSONString(arrayMap(t -> {_MS}(t), s.level_reached_at)), ',',
              toJSONString(s.last_event_tz), ',', s.recent_activity, ',',
              if(empty(c.courses), '[]', c.courses), ',', if(empty(d.days), '[]', d.days), ']'),
       1
FROM student_summary AS s
LEFT JOIN (
    SELECT student_id, concat('[', arrayStringConcat(arraySort(groupArray(toJSONString(tuple(
               course_id, enrolled, {_MS}(first_enrolled_at), completed_lessons,
               arrayMap(t -> {_MS}(t), completion_times), reported_progress,
               {_MS}(reported_progress_at), time_spent_minutes, {_MS}(last_activity_at))))),
               ','), ']') AS courses
    FROM student_courses GROUP BY student_id
) AS c USING student_id
LEFT JOIN (
    SELECT student_id, concat('[', arrayStringConcat(arraySort(groupArray(toJSONString(tuple(
               local_date, course_id, minutes, lessons_completed, completions,
               quizzes_completed, quiz_score_sum, points, {_MS}(first_completion_at))))),
               ','), ']') AS days
    FROM student_course_daily GROUP BY student_id
) AS d USING student_id
"""

AGGREGATE_KEYS = {
    "student_courses": "(student_id, course_id)",
    "student_course_daily": "(student_id, local_date, course_id)",
    "student_summary": "student_id",
}


def regranulate(client: Any, granularity: int) -> None:
    """Experiment: recreate the empty aggregate tables with smaller granules (index_granularity).

    The migrations use ClickHouse's default (8192 rows, or 10 MB of a column): a point
    read of one student then decompresses a whole granule of wide rows (recent activity
    JSON, arrays), so this shows what a smaller one would change for the API.
    """
    for table, key in AGGREGATE_KEYS.items():
        client.command(f"CREATE TABLE {table}_regranulated AS {table} "
                       f"ENGINE = ReplacingMergeTree(version) ORDER BY {key} "
                       f"SETTINGS index_granularity = {granularity}")  # fmt: skip
        client.command(f"EXCHANGE TABLES {table} AND {table}_regranulated")
        client.command(f"DROP TABLE {table}_regranulated")


def load(
    data_dir: Path, students: int, events: int, courses: int, granularity: int = 0
) -> dict[str, float]:
    client = connect(f"chdb://{data_dir / 'clickhouse'}", attempts=3)
    migrate(client)
    if granularity:
        regranulate(client, granularity)
    timings: dict[str, float] = {}
    per = max(1, events // students)
    now = int(dt.datetime.now(dt.UTC).timestamp()) - 120
    step = 365 * 86400 // per
    sql = EVENTS_SQL.format(
        courses=courses, students=students, events=events, per=per, step=step, now=now,
        z0=ZONES[0], z1=ZONES[1], z2=ZONES[2],
    )  # fmt: skip
    for name, statement in (("learning_events", sql), ("student_courses", COURSES_SQL),
                            ("student_course_daily", DAILY_SQL),
                            ("student_summary", SUMMARY_SQL),
                            ("student_dashboard", DASHBOARD_SQL)):  # fmt: skip
        started = time.perf_counter()
        client.command(statement, settings={"max_threads": 2, "max_insert_threads": 2})
        timings[name] = round(time.perf_counter() - started, 1)
    catalog = make_catalog(courses)
    # Every lesson id here is new, so a student can complete more lessons of a course
    # than its catalog's totalLessons; the API counts at most totalLessons of them only
    # from payloads the worker wrote (with their first completions), not from these
    # rows written by SQL. So each course lists at least as many lessons as its most
    # active student completed: the rules agree, and the reads are the same work.
    most = dict(client.query(
        "SELECT course_id, max(n) FROM (SELECT student_id, course_id, "
        "countIf(type = 'lesson_progress' AND completed) AS n FROM learning_events "
        "GROUP BY student_id, course_id) GROUP BY course_id"
    ).result_rows)  # fmt: skip
    at = dt.datetime.now(dt.UTC)
    rows = [
        [c["courseId"], c["title"], max(c["totalLessons"], int(most.get(c["courseId"], 0))),
         0, at, 1]
        for c in catalog
    ]  # fmt: skip
    client.insert(
        "course_catalog", rows,
        column_names=["course_id", "title", "total_lessons", "deleted", "updated_at", "version"],
    )  # fmt: skip
    started = time.perf_counter()
    for table in ("learning_events", "student_courses", "student_course_daily",
                  "student_summary", "student_dashboard"):  # fmt: skip
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    timings["optimize"] = round(time.perf_counter() - started, 1)
    for table in ("learning_events", "student_courses", "student_course_daily",
                  "student_summary", "student_dashboard", "course_catalog"):  # fmt: skip
        timings[f"rows_{table}"] = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument(
        "--granularity", type=int, default=0, help="experiment: aggregates' index_granularity"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = load(args.data_dir, args.students, args.events, args.courses, args.granularity)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
