"""Unit tests of the API's read-time rules (``api.metrics``, ``api.notifications``, timeutil).

Pure functions only: records are built by hand and "today"/"now" are fixed, so
nothing here touches ClickHouse or the wall clock. Expected values are worked
out by hand in each case (the arithmetic is written next to them).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import metrics
from api.notifications import notifications, streak_milestones
from api.records import CatalogEntry, CourseRecord, DayRecord, StudentData, SummaryRecord
from api.timeutil import (
    iso_utc,
    local_midnight,
    local_today,
    parse_occurred_at,
    request_zone,
)

UTC = dt.UTC
TODAY = dt.date(2026, 11, 26)  # a Thursday


def d(offset: int) -> dt.date:
    """TODAY shifted by ``offset`` days."""
    return TODAY + dt.timedelta(days=offset)


def ts(day: int, hour: int = 12, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


# ------------------------------------------------------------------- today
@pytest.mark.parametrize(
    ("now", "tz", "label", "expected"),
    [
        pytest.param(ts(26, 23, 30), None, "", d(0), id="no-zone-is-utc"),
        pytest.param(ts(26, 23, 30), "Europe/Paris", "", d(1), id="tz-param-ahead"),
        pytest.param(ts(26, 23, 30), None, "+02:00", d(1), id="offset-label-ahead"),
        pytest.param(ts(26, 3, 0), None, "-05:00", d(-1), id="offset-label-behind"),
        pytest.param(ts(26, 3, 0), None, "America/New_York", d(-1), id="iana-label-behind"),
        pytest.param(ts(26, 3, 0), "UTC", "America/New_York", d(0), id="tz-param-wins-over-label"),
        pytest.param(ts(26, 11, 0), None, "+14:00", d(1), id="kiribati-offset"),
        # 2026-03-29 is the spring DST switch in Paris: at 22:30 UTC Paris is at
        # UTC+2 (00:30 on the 30th) while the winter offset +01:00 says 23:30 on the 29th.
        pytest.param(
            ts(29, 22, 30, month=3), None, "Europe/Paris", dt.date(2026, 3, 30), id="dst-zone-label"
        ),
        pytest.param(
            ts(29, 22, 30, month=3), None, "+01:00", dt.date(2026, 3, 29), id="dst-fixed-offset"
        ),
    ],
)
def test_today(now: dt.datetime, tz: str | None, label: str, expected: dt.date) -> None:
    assert local_today(now, request_zone(tz, label)) == expected


def test_local_midnight_on_dst_days() -> None:
    paris = ZoneInfo("Europe/Paris")
    # midnight of the switch day is still winter time (UTC+1), the next one summer (UTC+2)
    assert local_midnight(dt.date(2026, 3, 29), paris) == dt.datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert local_midnight(dt.date(2026, 3, 30), paris) == dt.datetime(2026, 3, 29, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        pytest.param(ts(26, 9), "2026-11-26T09:00:00Z", id="whole-second"),
        pytest.param(ts(26, 9) + dt.timedelta(milliseconds=5), "2026-11-26T09:00:00.005Z", id="ms"),
        pytest.param(
            dt.datetime(2026, 11, 26, 10, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-11-26T09:00:00Z",
            id="converted-to-utc",
        ),
        pytest.param(dt.datetime(2026, 11, 26, 9), "2026-11-26T09:00:00Z", id="naive-is-utc"),
    ],
)
def test_iso_utc(moment: dt.datetime, text: str) -> None:
    assert iso_utc(moment) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-26T09:00:00Z", ts(26, 9), id="zulu"),
        pytest.param("2026-11-26t09:00:00z", ts(26, 9), id="lowercase"),
        pytest.param("2026-11-26 10:00:00+01:00", ts(26, 9), id="space-and-offset"),
        pytest.param(
            "2026-11-26T09:00:00.123456789Z",
            ts(26, 9) + dt.timedelta(microseconds=123456),
            id="nanoseconds-truncated",
        ),
    ],
)
def test_parse_occurred_at(text: str, expected: dt.datetime) -> None:
    assert parse_occurred_at(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-11-26T09:00:00", id="no-offset"),
        pytest.param("2026-11-26", id="date-only"),
        pytest.param("1795669200", id="unix-time"),
        pytest.param("2026-02-30T09:00:00Z", id="no-such-day"),
        pytest.param("2026-11-26T09:00:00+25:00", id="offset-out-of-range"),
    ],
)
def test_parse_occurred_at_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_occurred_at(text)


# ----------------------------------------------------------------- streaks
@pytest.mark.parametrize(
    ("active", "current", "longest"),
    [
        pytest.param([], 0, 0, id="never-active"),
        pytest.param([d(-2), d(-1), d(0)], 3, 3, id="ends-today"),
        pytest.param([d(-3), d(-2), d(-1)], 3, 3, id="ends-yesterday"),
        pytest.param([d(-4), d(-3), d(-2)], 0, 3, id="ended-day-before-yesterday"),
        pytest.param([d(-9), d(-8), d(-7), d(-6), d(-1), d(0)], 2, 4, id="longest-in-the-past"),
        pytest.param([d(-1), d(1), d(2)], 1, 2, id="future-days-ignored-for-current"),
        pytest.param([d(0), d(1)], 1, 2, id="future-day-extends-longest-only"),
        pytest.param([d(-1), d(-1), d(0)], 2, 2, id="duplicates"),
    ],
)
def test_streaks(active: list[dt.date], current: int, longest: int) -> None:
    assert metrics.current_streak(active, TODAY) == current
    assert metrics.longest_streak(active) == longest


# ----------------------------------------------------------------- progress
CATALOG_24 = CatalogEntry("c1", "Knitting 101", 24)


@pytest.mark.parametrize(
    ("course", "entry", "expected"),
    [
        pytest.param(CourseRecord("c1", completed_lessons=3), CATALOG_24, 12.5, id="3-of-24"),
        pytest.param(
            CourseRecord("c1", completed_lessons=1), CatalogEntry("c1", "T", 3), 33.3, id="1-of-3"
        ),
        pytest.param(
            CourseRecord("c1", completed_lessons=2), CatalogEntry("c1", "T", 3), 66.7, id="2-of-3"
        ),
        pytest.param(CourseRecord("c1", completed_lessons=30), CATALOG_24, 100.0, id="capped"),
        pytest.param(
            CourseRecord("c1", completed_lessons=3, reported_progress=80.0),
            CATALOG_24,
            12.5,
            id="catalog-beats-reported",
        ),
        pytest.param(
            CourseRecord("c1", completed_lessons=3, reported_progress=42.5),
            None,
            42.5,
            id="reported-without-catalog",
        ),
        pytest.param(
            CourseRecord("c1", completed_lessons=3, reported_progress=42.5),
            CatalogEntry("c1", "T", 0),
            42.5,
            id="catalog-without-lessons",
        ),
        pytest.param(
            CourseRecord("c1", completed_lessons=3, reported_progress=42.5),
            CatalogEntry("c1", "T", 24, deleted=True),
            42.5,
            id="deleted-catalog",
        ),
        pytest.param(CourseRecord("c1", completed_lessons=3), None, 0.0, id="nothing-known"),
    ],
)
def test_course_progress(course: CourseRecord, entry: CatalogEntry | None, expected: float) -> None:
    assert metrics.course_progress(course, entry) == expected


def test_course_view_with_and_without_catalog() -> None:
    course = CourseRecord(
        "c1", completed_lessons=24, time_spent_minutes=95, last_activity_at=ts(25, 8)
    )
    known = metrics.course_view(course, CATALOG_24)
    assert (known.title, known.total_lessons, known.progress, known.status) == (
        "Knitting 101", 24, 100.0, "completed",
    )  # fmt: skip
    assert known.time_spent_minutes == 95.0
    assert known.last_activity_at == "2026-11-25T08:00:00Z"
    for entry in (None, CatalogEntry("c1", "Gone", 24, deleted=True)):
        unknown = metrics.course_view(course, entry)
        assert (unknown.title, unknown.total_lessons, unknown.progress, unknown.status) == (
            None, None, 0.0, "active",
        )  # fmt: skip


def test_course_list_order_and_enrollment() -> None:
    data = StudentData(
        courses=(
            CourseRecord("a-never", first_enrolled_at=ts(1)),
            CourseRecord("b-old", last_activity_at=ts(10), first_enrolled_at=ts(1)),
            CourseRecord("c-new", last_activity_at=ts(20), first_enrolled_at=ts(1)),
            CourseRecord("d-never-newer", first_enrolled_at=ts(5)),
            CourseRecord("e-gone", enrolled=False, last_activity_at=ts(25)),
            CourseRecord("f-tie", last_activity_at=ts(20), first_enrolled_at=ts(1)),
        )
    )
    order = [c.course_id for c in metrics.course_list(data)]
    assert order == ["c-new", "f-tie", "b-old", "d-never-newer", "a-never"]


# ------------------------------------------------------------------ summary
@pytest.mark.parametrize(
    ("points", "level", "to_next"),
    [
        pytest.param(0, 1, 100, id="zero"),
        pytest.param(99, 1, 1, id="99"),
        pytest.param(100, 2, 100, id="100"),
        pytest.param(318, 4, 82, id="318"),
    ],
)
def test_level(points: int, level: int, to_next: int) -> None:
    assert metrics.level_of(points) == (level, to_next)
    summary = metrics.summary_of([], SummaryRecord(total_points=points), TODAY)
    assert (summary.total_points, summary.level, summary.points_to_next_level) == (
        points, level, to_next,
    )  # fmt: skip


def test_summary_of_enrolled_courses() -> None:
    data = StudentData(
        courses=(
            CourseRecord("c1", completed_lessons=3),  # 12.5 by the catalog
            CourseRecord("c2", reported_progress=40.0),
            CourseRecord("c3", completed_lessons=1),  # 1/3 -> 33.3
            CourseRecord("c4", enrolled=False, reported_progress=100.0),
        ),
        catalog={"c1": CATALOG_24, "c3": CatalogEntry("c3", "T", 3)},
        summary=SummaryRecord(total_points=318, active_days=(d(-2), d(-1))),
    )
    summary = metrics.summary_of(metrics.course_list(data), data.summary, TODAY)
    assert summary.enrolled_courses == 3
    assert summary.average_progress == round((12.5 + 40.0 + 33.3) / 3, 1)  # 28.6
    assert (summary.current_streak, summary.longest_streak) == (2, 2)
    assert (summary.level, summary.points_to_next_level) == (4, 82)


def test_summary_of_nobody() -> None:
    summary = metrics.summary_of([], None, TODAY)
    assert summary.model_dump() == {
        "enrolled_courses": 0, "average_progress": 0.0, "current_streak": 0,
        "longest_streak": 0, "total_points": 0, "level": 1, "points_to_next_level": 100,
    }  # fmt: skip


def test_recent_activity_is_the_stored_list() -> None:
    items = [
        {"eventId": f"e{i}", "type": "quiz_completed", "courseId": "c1", "lessonId": None,
         "quizId": "q1", "occurredAt": f"2026-11-{20 - i:02d}T09:00:00Z", "pointsAwarded": i}
        for i in range(10)
    ]  # fmt: skip
    parsed = metrics.recent_activity(SummaryRecord(recent_activity=orjson.dumps(items).decode()))
    assert [p.model_dump(by_alias=True) for p in parsed] == items
    assert metrics.recent_activity(None) == []


# --------------------------------------------------------------- by date
def test_weekly_activity_has_seven_days_oldest_first() -> None:
    rows = (
        DayRecord(d(-7), "c1", minutes=99, lessons_completed=9),  # before the week
        DayRecord(d(-6), "c1", minutes=30, lessons_completed=2),
        DayRecord(d(-6), "c2", minutes=7.5, lessons_completed=1),
        DayRecord(d(0), "c1", minutes=45),
        DayRecord(d(1), "c1", minutes=99, lessons_completed=9),  # after today
    )
    week = metrics.weekly_activity(rows, TODAY)
    assert [w.date for w in week] == [d(i) for i in range(-6, 1)]
    assert [w.day for w in week] == ["Fri", "Sat", "Sun", "Mon", "Tue", "Wed", "Thu"]
    assert (week[0].minutes, week[0].hours, week[0].lessons_completed) == (37.5, 0.62, 3)
    assert (week[6].minutes, week[6].hours, week[6].lessons_completed) == (45.0, 0.75, 0)
    assert all(w.minutes == 0 and w.lessons_completed == 0 for w in week[1:6])


def test_statistics_zero_fills_and_totals() -> None:
    data = StudentData(
        courses=(CourseRecord("c1", completed_lessons=6), CourseRecord("c2")),
        catalog={"c1": CATALOG_24},
        days=(
            DayRecord(d(-5), "c1", minutes=500, lessons_completed=5, completions=5),  # too old
            DayRecord(d(-4), "c1", minutes=20, lessons_completed=1, completions=2, points=10),
            DayRecord(d(-4), "c2", minutes=30, quizzes_completed=2, quiz_score_sum=170, points=8),
            DayRecord(d(-1), "c2", minutes=10, quizzes_completed=1, quiz_score_sum=90, points=1),
            DayRecord(d(0), "c1", minutes=0, completions=1),  # a repeat completion only
            DayRecord(d(0), "c3", minutes=10),  # a course without a record
        ),
    )
    stats = metrics.statistics("s1", data, TODAY, 5)
    assert (stats.days, stats.from_, stats.to) == (5, d(-4), d(0))
    assert [x.date for x in stats.daily] == [d(-4), d(-3), d(-2), d(-1), d(0)]
    assert [x.minutes for x in stats.daily] == [50.0, 0.0, 0.0, 10.0, 10.0]
    assert [x.lessons_completed for x in stats.daily] == [1, 0, 0, 0, 0]
    assert [x.quizzes_completed for x in stats.daily] == [2, 0, 0, 1, 0]
    assert [x.points for x in stats.daily] == [18, 0, 0, 1, 0]
    totals = stats.totals
    assert (totals.minutes, totals.hours) == (70.0, round(70 / 60, 2))
    assert (totals.lessons_completed, totals.quizzes_completed) == (1, 3)
    assert totals.average_quiz_score == round((170 + 90) / 3, 1)  # 86.7
    assert (totals.active_days, totals.points_earned) == (2, 19)
    assert [(c.course_id, c.minutes, c.lessons_completed, c.progress) for c in stats.courses] == [
        ("c2", 40.0, 0, 0.0),
        ("c1", 20.0, 1, 25.0),  # 6 of 24 lessons
        ("c3", 10.0, 0, 0.0),
    ]


def test_statistics_of_nobody() -> None:
    stats = metrics.statistics("s1", StudentData(), TODAY, 1)
    assert (stats.from_, stats.to, len(stats.daily), stats.courses) == (d(0), d(0), 1, [])
    assert stats.totals.average_quiz_score is None
    assert stats.totals.minutes == 0 and stats.totals.active_days == 0


# ------------------------------------------------------------ notifications
@pytest.mark.parametrize(
    ("active", "expected"),
    [
        pytest.param([d(-1), d(0)], [], id="too-short"),
        pytest.param([d(-2), d(-1), d(0)], [(d(0), 3)], id="three"),
        pytest.param(
            [d(-20 + i) for i in range(7)] + [d(-5), d(-4), d(-3)],
            [(d(-18), 3), (d(-14), 7), (d(-3), 3)],
            id="each-run-counts",
        ),
        pytest.param(
            [d(-i) for i in range(30)],
            [(d(-27), 3), (d(-23), 7), (d(-16), 14), (d(0), 30)],
            id="thirty",
        ),
    ],
)
def test_streak_milestones(active: list[dt.date], expected: list[tuple[dt.date, int]]) -> None:
    assert streak_milestones(active) == expected


def test_notifications_kinds_times_and_order() -> None:
    data = StudentData(
        courses=(
            CourseRecord(  # catalog decides: the 3rd first completion reached 100 %
                "c1", completed_lessons=4, completion_times=(ts(1), ts(2), ts(3), ts(4))
            ),
            CourseRecord("c2", reported_progress=100.0, reported_progress_at=ts(5)),
            CourseRecord("c3", enrolled=False, reported_progress=100.0, reported_progress_at=ts(6)),
            CourseRecord("c4", reported_progress=99.0, reported_progress_at=ts(7)),
        ),
        catalog={"c1": CatalogEntry("c1", "Knitting 101", 3)},
        summary=SummaryRecord(
            total_points=210,
            active_days=(d(-12), d(-11), d(-10)),
            level_reached_at=(ts(8), ts(9, 6)),
        ),
        days=(
            DayRecord(d(-10), "c1", first_completion_at=ts(16, 7)),
            DayRecord(d(-10), "c2", first_completion_at=ts(16, 6)),
        ),
    )
    found = notifications(data, UTC)
    assert [(n.kind, n.message, n.at) for n in found] == [
        ("streak_milestone", "3-day learning streak", "2026-11-16T06:00:00Z"),
        ("level_up", "Reached level 3", "2026-11-09T06:00:00Z"),
        ("level_up", "Reached level 2", "2026-11-08T12:00:00Z"),
        ("course_completed", "Completed c2", "2026-11-05T12:00:00Z"),
        ("course_completed", 'Completed "Knitting 101"', "2026-11-03T12:00:00Z"),
    ]


def test_streak_milestone_without_completion_time_uses_local_midnight() -> None:
    data = StudentData(summary=SummaryRecord(active_days=(d(-2), d(-1), d(0))))
    paris = ZoneInfo("Europe/Paris")
    (found,) = notifications(data, paris)
    assert found.at == iso_utc(dt.datetime.combine(d(0), dt.time(0), tzinfo=paris))
    assert found.at == "2026-11-25T23:00:00Z"


def test_notifications_newest_ten() -> None:
    reached = tuple(ts(1) + dt.timedelta(hours=i) for i in range(15))
    data = StudentData(summary=SummaryRecord(total_points=1600, level_reached_at=reached))
    found = notifications(data, UTC)
    assert len(found) == 10
    assert [n.message for n in found] == [f"Reached level {i + 2}" for i in range(14, 4, -1)]
    assert [n.at for n in found] == [iso_utc(reached[i]) for i in range(14, 4, -1)]


def test_notifications_of_nobody() -> None:
    assert notifications(StudentData(), UTC) == []


def test_minutes_and_scores_add_up_exactly() -> None:
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in floats; the sums must not depend on the order
    rows = tuple(
        DayRecord(d(0), f"c{i}", minutes=m, quizzes_completed=1, quiz_score_sum=s)
        for i, (m, s) in enumerate([(0.1, 70.1), (0.2, 80.2), (0.3, 90.3)])
    )
    assert 0.1 + 0.2 + 0.3 != 0.6
    assert metrics.weekly_activity(rows, TODAY)[-1].minutes == 0.6
    stats = metrics.statistics("s1", StudentData(days=rows), TODAY, 1)
    assert stats.daily[0].minutes == 0.6 and stats.totals.minutes == 0.6
    assert stats.totals.average_quiz_score == 80.2  # 240.6 / 3
    two = StudentData(
        days=(DayRecord(d(0), "c1", minutes=0.1), DayRecord(d(-1), "c1", minutes=0.2))
    )
    assert metrics.statistics("s1", two, TODAY, 2).courses[0].minutes == 0.3


# ------------------------------------------- the /statistics body without the model
_minutes = st.one_of(st.integers(0, 1440), st.floats(0, 1440, allow_nan=False))
_days = st.builds(
    DayRecord,
    local_date=st.dates(d(-400), d(2)),
    course_id=st.sampled_from(["c1", "c2", "c3"]),
    minutes=_minutes,
    lessons_completed=st.integers(0, 30),
    completions=st.integers(0, 30),
    quizzes_completed=st.integers(0, 5),
    quiz_score_sum=st.one_of(st.integers(0, 500), st.floats(0, 500, allow_nan=False)),
    points=st.integers(0, 300),
)
_courses = st.builds(
    CourseRecord,
    course_id=st.sampled_from(["c1", "c2", "c4"]),
    completed_lessons=st.integers(0, 40),
    reported_progress=st.one_of(st.none(), st.integers(0, 100), st.floats(0, 100)),
    lessons=st.none(),
    quiz_awards=st.none(),
)


@given(
    days=st.lists(_days, max_size=40),
    courses=st.lists(_courses, max_size=3, unique_by=lambda c: c.course_id),
    lessons=st.sampled_from([0, 7, 24]),
    period=st.sampled_from([1, 7, 30, 365]),
    student=st.text(min_size=1, max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_statistics_body_is_what_the_model_writes(
    days: list[DayRecord], courses: list[CourseRecord], lessons: int, period: int, student: str
) -> None:
    """The route answers ``statistics_body``; the model is the documented schema: the
    two must be the same bytes, whatever the data."""
    catalog = {"c1": CatalogEntry("c1", "T", lessons), "c2": CatalogEntry("c2", "U", 3, True)}
    data = StudentData(courses=tuple(courses), catalog=catalog, days=tuple(days))
    body = metrics.statistics_body(student, data, TODAY, period)
    model = metrics.statistics(student, data, TODAY, period)
    assert body == model.model_dump_json(by_alias=True).encode()
    assert len(model.daily) == period
