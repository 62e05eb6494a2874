"""The HTTP wire format of the dashboard API (docs/api.md), as pydantic models.

Field names are snake_case in Python and camelCase on the wire (the alias), so
``/openapi.json`` and ``/docs`` show exactly the contract's names. Timestamps are
already-formatted RFC 3339 UTC strings (``2026-11-26T09:00:00Z``); dates are
``YYYY-MM-DD``. The request body model accepts camelCase only and ignores
unknown fields, like the event topic does.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool
from pydantic.alias_generators import to_camel

from api.timeutil import check_rfc3339, check_zone_name
from schemas.events import Id, Minutes

EventType = Literal["lesson_progress", "quiz_completed", "enrolled", "unenrolled"]


class ApiModel(BaseModel):
    """Base of every response model: camelCase aliases, built from snake_case names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# ----------------------------------------------------------------- realtime
class CourseProgress(ApiModel):
    """One enrolled course on the dashboard."""

    course_id: str
    title: str | None
    completed_lessons: int
    total_lessons: int | None
    progress: float
    status: Literal["active", "completed"]
    time_spent_minutes: float
    last_activity_at: str | None


class DayActivity(ApiModel):
    """One local date of the weekly activity."""

    date: dt.date
    day: str
    minutes: float
    hours: float
    lessons_completed: int


class Summary(ApiModel):
    """Enrollment, streaks, points and level."""

    enrolled_courses: int
    average_progress: float
    current_streak: int
    longest_streak: int
    total_points: int
    level: int
    points_to_next_level: int


class RecentActivity(ApiModel):
    """One of the student's most recent events (newest first)."""

    event_id: str
    type: EventType
    course_id: str
    lesson_id: str | None = None
    quiz_id: str | None = None
    occurred_at: str
    points_awarded: int


class Notification(ApiModel):
    """Something worth telling the learner; see ``api.notifications``."""

    kind: Literal["level_up", "streak_milestone", "course_completed"]
    message: str
    at: str


class RealtimeDashboard(ApiModel):
    """``GET /api/dashboard/realtime``."""

    student_id: str
    generated_at: str
    courses: list[CourseProgress]
    weekly_activity: list[DayActivity]
    summary: Summary
    recent_activity: list[RecentActivity]
    notifications: list[Notification]


# --------------------------------------------------------------- statistics
class StatisticsTotals(ApiModel):
    """Totals over the requested period."""

    minutes: float
    hours: float
    lessons_completed: int
    quizzes_completed: int
    average_quiz_score: float | None
    active_days: int
    points_earned: int


class DailyStatistics(ApiModel):
    """One local date of the period (zeros when nothing happened)."""

    date: dt.date
    minutes: float
    lessons_completed: int
    quizzes_completed: int
    points: int


class CourseStatistics(ApiModel):
    """One course with activity in the period."""

    course_id: str
    minutes: float
    lessons_completed: int
    progress: float


class Statistics(ApiModel):
    """``GET /api/dashboard/statistics``."""

    student_id: str
    days: int
    from_: dt.date = Field(alias="from")
    to: dt.date
    totals: StatisticsTotals
    daily: list[DailyStatistics]
    courses: list[CourseStatistics]


# ----------------------------------------------------------- progress update
class ProgressUpdateRequest(BaseModel):
    """Body of ``POST /api/dashboard/progress/update`` (camelCase, as the front end sends it).

    ``occurredAt`` must be RFC 3339 with an offset (the route also refuses it
    more than 24 h ahead); ``timezone`` (an optional extension of the contract's
    body, passed on to the event) must be a known IANA zone.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="ignore", frozen=True
    )

    course_id: Id
    lesson_id: Id
    module_id: Id | None = None
    time_spent: Minutes = 0.0
    completed: StrictBool
    event_id: Id | None = None
    occurred_at: Annotated[str, Field(max_length=64), AfterValidator(check_rfc3339)] | None = None
    timezone: Annotated[str, Field(max_length=64), AfterValidator(check_zone_name)] | None = None


class ProgressApplied(ApiModel):
    """200: the pipeline applied the event; the course and summary include it."""

    event_id: str
    applied: Literal[True] = True
    course: CourseProgress | None
    summary: Summary


class ProgressPending(ApiModel):
    """202: the event was produced but not seen applied within the wait limit."""

    event_id: str
    applied: Literal[False] = False


# ------------------------------------------------------------------- errors
class ErrorBody(ApiModel):
    """401, 403, 503 and 500 answers."""

    detail: str


class FieldProblem(ApiModel):
    """One invalid input: which field, where, and what is wrong."""

    field: str
    location: str
    message: str
    type: str


class ValidationErrorBody(ApiModel):
    """422 answers."""

    detail: list[FieldProblem]


class Readiness(ApiModel):
    """``GET /readyz``: each dependency is ``ok`` or says why it is down."""

    status: Literal["ok", "unavailable"]
    clickhouse: str
    kafka: str
