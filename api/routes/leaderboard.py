"""``/api/leaderboard``: rankings by points and the learner's visibility (docs/api.md
§ Leaderboards). Every route needs a bearer token.

``GET /api/leaderboard`` answers on the event loop from a kept ranking
(``api.leaderboards``) when there is one, else builds it on the thread pool.
"Today" is the date in ``tz``, else in the zone of the requester's latest event
(one ClickHouse point read), else UTC. ``me`` is always the token's subject.

``GET``/``PUT /api/leaderboard/me`` read and store the setting. Who may set
whose: a student their own (``studentId`` naming another is 403); an admin
their own or, with ``studentId``, anyone's (moderation: hiding an offensive
name); a service anyone's and must say whose with ``studentId`` (a platform
passing on a privacy setting it collects). Reading follows the dashboard's
rules (a student their own; admin and service anyone's with ``studentId``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator

from api.auth import MAX_ID_LENGTH, AuthError, Principal, student_to_read
from api.deps import ClockDep, CurrentPrincipal
from api.errors import invalid_input
from api.leaderboard_models import (
    Leaderboard,
    LeaderboardSetting,
    LeaderboardSettingRequest,
    has_control,
)
from api.leaderboard_store import Profile
from api.leaderboards import Leaderboards
from api.models import ErrorBody, ValidationErrorBody
from api.query_params import StudentQuery, TzQuery
from api.ranking import DEFAULT_LIMIT, MAX_LIMIT, ranking_key
from api.timeutil import local_today, request_zone

router = APIRouter(prefix="/api/leaderboard", tags=["leaderboard"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, invalid or expired token"},
    403: {"model": ErrorBody, "description": "not allowed for this token"},
    422: {"model": ValidationErrorBody, "description": "invalid input, naming the field"},
    503: {"model": ErrorBody, "description": "ClickHouse unavailable"},
}


def _check_course(value: str | None) -> str | None:
    if value is not None and has_control(value):
        raise ValueError("must not contain control characters")
    return value


PeriodQuery = Annotated[
    Literal["week", "month", "all"],
    Query(description="the last 7 or 30 local dates up to today, or all time"),
]
CourseQuery = Annotated[
    str | None,
    Query(
        alias="courseId",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="rank by this course's points only (default: all courses)",
    ),
    AfterValidator(_check_course),
]
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="how many of the top learners to list")
]


async def get_leaderboards(request: Request) -> Leaderboards:
    """The process's leaderboards (``api.main`` puts them on ``app.state``)."""
    return request.app.state.leaderboards  # type: ignore[no-any-return]


LeaderboardsDep = Annotated[Leaderboards, Depends(get_leaderboards)]


def _json(body: bytes | str) -> Response:
    return Response(content=body, media_type="application/json")


@router.get("", response_model=Leaderboard, responses=ERRORS)
async def leaderboard(
    principal: CurrentPrincipal,
    board: LeaderboardsDep,
    clock: ClockDep,
    period: PeriodQuery,
    course_id: CourseQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    tz: TzQuery = None,
) -> Response:
    """The top learners of a period by points, and where the requester stands."""
    now = clock()
    label = None if tz else board.zones.get(principal.subject)
    if not tz and label is None:
        label = await run_in_threadpool(board.latest_zone, principal.subject)
    today = local_today(now, request_zone(tz, label))
    key = ranking_key(period, course_id, today)
    args = (key, today, limit, principal.subject, principal.role == "admin")
    body = board.kept_body(*args)
    if body is None:
        body = await run_in_threadpool(board.body, *args)
    return _json(body)


def _reader(principal: Principal, requested: str | None) -> str:
    try:
        return student_to_read(principal, requested)
    except AuthError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message) from None


def _setter(principal: Principal, requested: str | None) -> str:
    """Whose setting the caller may store (see the module)."""
    if principal.role == "service":
        if requested is None:
            raise invalid_input(
                "studentId", "studentId is required when a service sets a learner's visibility",
                location="query",
            )  # fmt: skip
        return requested
    if requested is None or requested == principal.subject:
        return principal.subject
    if principal.role == "admin":
        return requested
    raise HTTPException(status_code=403, detail="a student may only set their own visibility")


def _setting(profile: Profile) -> Response:
    setting = LeaderboardSetting(visible=profile.visible, name=profile.name)
    return _json(setting.model_dump_json(by_alias=True))


@router.get("/me", response_model=LeaderboardSetting, responses=ERRORS)
async def my_setting(
    principal: CurrentPrincipal, board: LeaderboardsDep, student_id: StudentQuery = None
) -> Response:
    """Whether the learner shows on leaderboards, and the name they chose."""
    student = _reader(principal, student_id)
    return _setting(await run_in_threadpool(board.setting, student))


@router.put("/me", response_model=LeaderboardSetting, responses=ERRORS)
async def set_my_setting(
    body: LeaderboardSettingRequest,
    principal: CurrentPrincipal,
    board: LeaderboardsDep,
    clock: ClockDep,
    student_id: StudentQuery = None,
) -> Response:
    """Show the learner under a name of their choice, or hide them (the default)."""
    student = _setter(principal, student_id)
    if "name" in body.model_fields_set:
        name = body.name
    else:
        name = (await run_in_threadpool(board.setting, student)).name
    if body.visible and name is None:
        raise invalid_input("name", "a name is required to be visible")
    saved = await run_in_threadpool(board.save, student, Profile(body.visible, name), clock())
    return _setting(saved)
