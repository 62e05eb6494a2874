"""The ASGI fast path of ``GET /api/leaderboard``: kept rankings answered without FastAPI.

``LeaderboardPath`` is a pure ASGI middleware, the leaderboard's twin of
``api.fast_path``. A GET of ``/api/leaderboard`` whose query is plain (only
``period``, ``courseId``, ``limit``, ``tz``, each once, each inside the route's
bounds: ``plain_query``), whose bearer token is valid, whose "today" is known
without I/O (``tz``, else the kept zone of the requester's latest event) and
whose ranking is kept and current (``api.leaderboards``) is answered at once,
without FastAPI's routing, dependencies and validation: at 50 clients those cost
about as much CPU as the answer itself. Anything else goes on to the route,
unchanged: every error and every answer that needs a read come from it. A
failure in here is logged and the request goes on to the route.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import MAX_ID_LENGTH, AuthError, decode_token
from api.fast_path import bearer_token, send_json
from api.leaderboard_models import has_control
from api.leaderboards import Leaderboards
from api.query_params import MAX_ZONE_NAME
from api.ranking import DEFAULT_LIMIT, MAX_LIMIT, PERIODS, Period, ranking_key
from api.timeutil import local_today, request_zone
from schemas.events import zone

log = logging.getLogger(__name__)

PATH = "/api/leaderboard"
PARAMETERS = ("period", "courseId", "limit", "tz")


def plain_query(query: bytes) -> tuple[Period, str | None, int, str | None] | None:
    """(period, courseId, limit, tz) of a query the route would take as it is, or None."""
    given: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name not in PARAMETERS or name in given:
            return None
        given[name] = value
    period = given.get("period")
    if period not in PERIODS:
        return None
    course = given.get("courseId")
    if course is not None and not (1 <= len(course) <= MAX_ID_LENGTH and not has_control(course)):
        return None
    text = given.get("limit")
    limit = DEFAULT_LIMIT
    if text is not None:
        if not (text.isascii() and text.isdigit() and text == str(int(text))):
            return None
        limit = int(text)
        if not 1 <= limit <= MAX_LIMIT:
            return None
    tz = given.get("tz")
    if tz is not None and not (1 <= len(tz) <= MAX_ZONE_NAME and zone(tz) is not None):
        return None
    return period, course, limit, tz  # type: ignore[return-value]


class LeaderboardPath:
    """Pure ASGI middleware: kept leaderboard answers without the app (see the module).

    ``routes``: the leaderboard routes; the GET one labels the request metrics of an
    answer served here (``api.observability``).
    """

    def __init__(self, app: ASGIApp, api: Any, routes: Iterable[Any]) -> None:
        self.app = app
        self.api = api  # the FastAPI app: its state
        self.route = next(
            (r for r in routes if getattr(r, "path", None) == PATH and "GET" in r.methods), None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == PATH:
            try:
                body = self._kept(scope)
            except Exception:  # a bug here must not cost the answer: the route gives it
                log.exception("kept leaderboard answer failed; answering through the route")
                body = None
            if body is not None:
                if self.route is not None:
                    scope["route"] = self.route  # for the request metrics
                await send_json(send, body)
                return
        await self.app(scope, receive, send)

    def _kept(self, scope: Scope) -> bytes | None:
        state = self.api.state
        board: Leaderboards = state.leaderboards
        parsed = plain_query(scope.get("query_string", b""))
        token = bearer_token(scope["headers"])
        if parsed is None or token is None:
            return None
        period, course, limit, tz = parsed
        try:
            principal = decode_token(token, state.settings.jwt_secret)
        except AuthError:
            return None
        label = None if tz else board.zones.get(principal.subject)
        if not tz and label is None:
            return None
        today = local_today(state.clock(), request_zone(tz, label))
        key = ranking_key(period, course, today)
        return board.kept_body(key, today, limit, principal.subject, principal.role == "admin")
