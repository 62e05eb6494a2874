"""ClickHouse reads and the one write of the leaderboards (tables of migration 0007).

- ``read_ranking``: one period's points per learner, summed and ordered by
  ClickHouse. Points per (course, local date) come from ``leaderboard_points``,
  ordered by course and date so a period reads only its own rows; all-time
  points over every course are ``student_summary.total_points`` (one row per
  learner, no sum). Both are written by the worker in the same flush.
- ``read_profiles``: the visibility choices written after a version (all of
  them from 0), for ``api.leaderboard_cache.ProfileBook``.
- ``read_profile`` / ``write_profile``: one learner's choice (``PUT
  /api/leaderboard/me``). The API writes this table itself: it is not derived
  from events, and the choice must show on the next read.
- ``latest_zone``: the zone of the learner's most recent event ("today").

ClickHouse failures raise ``api.store.StoreUnavailable`` (answered 503).
Calls block: run them off the event loop.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

from clickhouse_connect.driver.exceptions import ClickHouseError

from api.ranking import Ranking, RankingKey
from api.store import StoreUnavailable

log = logging.getLogger(__name__)

_ALL_TIME_SQL = (
    "SELECT student_id, total_points AS p FROM student_summary FINAL "
    "WHERE total_points > 0 ORDER BY p DESC, student_id"
)
_PERIOD_SQL = (
    "SELECT student_id, sum(points) AS p FROM leaderboard_points FINAL "
    "WHERE {where} GROUP BY student_id HAVING p > 0 ORDER BY p DESC, student_id"
)
_PROFILES_SQL = (
    "SELECT student_id, visible, name, version FROM leaderboard_profiles "
    "WHERE version > {after:UInt64}"
)
_PROFILE_SQL = (
    "SELECT visible, name FROM leaderboard_profiles FINAL WHERE student_id = {student:String}"
)
_WRITE_SQL = (
    "INSERT INTO leaderboard_profiles (student_id, visible, name, updated_at, version) "
    "VALUES ({student:String}, {visible:UInt8}, {name:String}, "
    "fromUnixTimestamp64Nano({version:Int64}, 'UTC'), {version:UInt64})"
)
_ZONE_SQL = "SELECT last_event_tz FROM student_summary FINAL WHERE student_id = {student:String}"


# One engine thread per build: a rebuild then leaves the other core to the requests
# (on 2 busy cores, 2 threads built the week's ranking no faster: 255 against 94 ms).
BUILD_SETTINGS = {"max_threads": 1}


class Profile(NamedTuple):
    """A learner's leaderboard setting: ``name`` is kept while hidden, shown only while visible."""

    visible: bool = False
    name: str | None = None


class ProfileRow(NamedTuple):
    """One stored version of a setting."""

    student_id: str
    visible: bool
    name: str | None
    version: int


@contextlib.contextmanager
def _read(what: str) -> Iterator[None]:
    try:
        yield
    except (ClickHouseError, OSError) as exc:
        log.error("ClickHouse failed for %s: %s", what, exc)
        raise StoreUnavailable("ClickHouse is unavailable; try again shortly") from exc


def ranking_query(key: RankingKey) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of the ranking ``key`` (see the module)."""
    if key.course_id is None and key.since is None and key.until is None:
        return _ALL_TIME_SQL, {}
    where = ["1"]
    parameters: dict[str, Any] = {}
    if key.course_id is not None:
        where.append("course_id = {course:String}")
        parameters["course"] = key.course_id
    if key.since is not None:
        where.append("local_date >= {since:Date}")
        parameters["since"] = key.since
    if key.until is not None:
        where.append("local_date <= {until:Date}")
        parameters["until"] = key.until
    return _PERIOD_SQL.format(where=" AND ".join(where)), parameters


def read_ranking(client: Any, key: RankingKey) -> Ranking:
    """The ranking ``key`` as ClickHouse sums and orders it."""
    sql, parameters = ranking_query(key)
    with _read("a leaderboard"):
        columns = client.query(sql, parameters=parameters, settings=BUILD_SETTINGS).result_columns
    if not columns:
        return Ranking([], [])
    ids, points = columns
    return Ranking(ids, points)


def read_profiles(client: Any, after: int) -> list[ProfileRow]:
    """Every stored version of a setting above ``after`` (not deduplicated)."""
    with _read("leaderboard profiles"):
        rows = client.query(_PROFILES_SQL, parameters={"after": after}).result_rows
    return [
        ProfileRow(student_id, bool(visible), name or None, int(version))
        for student_id, visible, name, version in rows
    ]


def read_profile(client: Any, student_id: str) -> Profile:
    """The learner's stored setting (not visible, no name, when never set)."""
    with _read("a leaderboard profile"):
        rows = client.query(_PROFILE_SQL, parameters={"student": student_id}).result_rows
    if not rows:
        return Profile()
    visible, name = rows[0]
    return Profile(bool(visible), name or None)


def write_profile(client: Any, student_id: str, profile: Profile, version: int) -> None:
    """Store a setting; ``version`` (nanoseconds since the epoch) orders the writes."""
    parameters = {
        "student": student_id,
        "visible": 1 if profile.visible else 0,
        "name": profile.name or "",
        "version": version,
    }
    with _read("writing a leaderboard profile"):
        client.command(_WRITE_SQL, parameters=parameters)


def latest_zone(client: Any, student_id: str) -> str:
    """The zone label of the learner's most recent event ('' when none)."""
    with _read("a learner's zone"):
        rows = client.query(_ZONE_SQL, parameters={"student": student_id}).result_rows
    return str(rows[0][0]) if rows else ""


def version_now(now: dt.datetime) -> int:
    """A write version from a clock: nanoseconds since the epoch."""
    return int(now.timestamp() * 1_000_000) * 1000
