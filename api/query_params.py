"""The dashboard routes' query parameters and their bounds, stated once.

The routes declare them with the ``Annotated`` aliases here (FastAPI validates,
documents and answers 422); the ASGI fast path (``api.fast_path``) takes a query
as it is only when ``plain_query`` finds every value inside the same bounds, and
leaves anything else to the routes. So a bound changed here changes both.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Query
from pydantic import AfterValidator

from api.auth import MAX_ID_LENGTH
from api.timeutil import check_zone_name
from schemas.events import CONTROL_CHARACTERS, CONTROL_MESSAGE, zone

REALTIME = "/api/dashboard/realtime"
STATISTICS = "/api/dashboard/statistics"
DEFAULT_DAYS = 30
MAX_DAYS = 365
MAX_ZONE_NAME = 64
# The parameters each GET route takes.
PARAMETERS = {REALTIME: ("tz", "studentId"), STATISTICS: ("days", "tz", "studentId")}

TzQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_ZONE_NAME,
        description="IANA zone deciding 'today' (default: the zone of the latest event, else UTC)",
    ),
    AfterValidator(lambda value: None if value is None else check_zone_name(value)),
]


def check_student_id(value: str | None) -> str | None:
    """A ``studentId`` without control characters (the rule of every id)."""
    if value is not None and CONTROL_CHARACTERS.search(value) is not None:
        raise ValueError(CONTROL_MESSAGE)
    return value


StudentQuery = Annotated[
    str | None,
    Query(
        alias="studentId",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="whose data: admin/service read anyone's, a service writes for anyone",
    ),
    AfterValidator(check_student_id),
]
DaysQuery = Annotated[int, Query(ge=1, le=MAX_DAYS, description="length of the period in days")]


def plain_query(path: str, query: bytes) -> tuple[str | None, int, str | None] | None:
    """(``tz``, ``days``, ``studentId``) of a query the route at ``path`` would take as
    it is (``days`` 0 for a route without it), or None when the route should decide:
    an unknown or repeated parameter, or a value out of its bounds."""
    allowed = PARAMETERS[path]
    given: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name not in allowed or name in given:
            return None
        given[name] = value
    tz = given.get("tz")
    if tz is not None and not (1 <= len(tz) <= MAX_ZONE_NAME and zone(tz) is not None):
        return None
    requested = given.get("studentId")
    if requested is not None and (
        not 1 <= len(requested) <= MAX_ID_LENGTH or CONTROL_CHARACTERS.search(requested)
    ):
        return None
    days = 0
    if "days" in allowed:
        text = given.get("days")
        if text is None:
            days = DEFAULT_DAYS
        elif text.isascii() and text.isdigit() and text == str(int(text)):
            days = int(text)
            if not 1 <= days <= MAX_DAYS:
                return None
        else:
            return None
    return tz, days, requested
