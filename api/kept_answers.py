"""Dashboard answers kept with the payload they came from, and the ASGI path that serves them.

A dashboard is polled far more often than it changes. ``api.dashboard_cache``
keeps a student's payload while it is current; the routes also keep what they
answered from it (the JSON body of ``/realtime`` or ``/statistics``) under the
request's (route, ``tz``, ``days``), with what that answer depended on
(``Basis``): the payload's version, "today" in the answer's zone, and the
catalog entries of the student's courses. While the payload is current, the
date the same and the entries equal, the route would compute the same bytes
again, except ``generatedAt`` (``/realtime``), which is written in at the
current time. Bodies are kept LZ4-compressed (~1.2 KiB for a /realtime body of
3.4 KiB, ~3 KiB for a 365-day /statistics body of 33 KiB), at most
``ANSWERS_PER_STUDENT`` per kept payload; they go with the payload.

``KeptAnswers`` is the ASGI middleware that serves them: a GET of one of the two
routes whose query parameters, bearer token and access rights are valid, and
whose answer is kept and still holds, is answered at once, without FastAPI's
routing, dependencies, models and serialisation (the API's CPU per /realtime
poll went from 1.0 to 0.2 ms; BENCHMARKS.md, twelfth session). Anything else —
no or a bad token, a parameter the route does not know, one given twice, a
value the route would refuse, no kept answer, the change feed or the catalog
copy stale — goes on to the app unchanged, which answers it (and keeps what it
answered from a kept payload). So every status other than 200, every error
body and every answer computed for the first time come from the routes.
A failure inside the fast path is logged and the request goes on to the app.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import lz4.block
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from api import store
from api.auth import MAX_ID_LENGTH, AuthError, decode_token, student_to_read
from api.dashboard_cache import DashboardCache
from api.observability import DASHBOARD_CACHE
from api.records import CatalogEntry
from api.timeutil import iso_utc, local_today
from schemas.events import zone

log = logging.getLogger(__name__)

REALTIME = "/api/dashboard/realtime"
STATISTICS = "/api/dashboard/statistics"
DEFAULT_DAYS = 30  # the route's default for ``days``
MAX_DAYS = 365
MAX_ZONE_NAME = 64  # the route's max_length for ``tz``
PARAMETERS = {REALTIME: ("tz", "studentId"), STATISTICS: ("days", "tz", "studentId")}
# ``generatedAt`` is the second field of a /realtime body, after ``studentId``: a JSON
# string cannot hold this text unescaped, so its first occurrence is the field.
STAMP_FIELD = b',"generatedAt":"'

# (route path, tz, days): days is 0 for /realtime
AnswerKey = tuple[str, str | None, int]


@dataclass(frozen=True, slots=True)
class Basis:
    """What an answer computed from a kept payload depended on."""

    version: int  # of the payload
    today: dt.date  # in ``zone``
    zone: dt.tzinfo  # the request's ``tz``, else the zone of the student's latest event
    course_ids: tuple[str, ...]  # every course of the payload
    catalog: dict[str, CatalogEntry]  # their entries as the answer used them


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """A kept body (LZ4) and where its ``generatedAt`` value is (None: no such field)."""

    basis: Basis
    body: bytes
    stamp: tuple[int, int] | None


def answer_key(path: str, tz: str | None, days: int = 0) -> AnswerKey:
    """The key an answer is kept under."""
    return (path, tz, days)


def keep(
    cache: DashboardCache | None,
    student_id: str,
    key: AnswerKey,
    body: bytes,
    basis: Basis,
) -> None:
    """Keep the body a route answered from the kept payload ``basis.version``."""
    if cache is None:
        return
    stamp = None
    if key[0] == REALTIME:
        start = body.find(STAMP_FIELD)
        if start < 0:
            return  # not the shape this module knows: never serve it
        start += len(STAMP_FIELD)
        stamp = (start, body.index(b'"', start))
    answer = KeptAnswer(basis, lz4.block.compress(body), stamp)
    cache.keep_answer(student_id, basis.version, key, answer)


def kept_body(
    cache: DashboardCache, client: Any, student_id: str, key: AnswerKey, now: dt.datetime
) -> bytes | None:
    """The body kept under ``key`` if it still holds at ``now``, else None (no I/O)."""
    kept: KeptAnswer | None = cache.answer(student_id, key)
    if kept is None:
        return None
    basis = kept.basis
    if local_today(now, basis.zone) != basis.today:
        return None
    if store.CATALOG.kept_entries(client, basis.course_ids) != basis.catalog:
        return None  # an entry changed, or the kept catalog copy is stale (None)
    body: bytes = lz4.block.decompress(kept.body)
    if kept.stamp is not None:
        start, end = kept.stamp
        body = body[:start] + iso_utc(now).encode() + body[end:]
    DASHBOARD_CACHE.labels("hit").inc()
    return body


def request_key(path: str, query: bytes) -> tuple[AnswerKey, str | None] | None:
    """(answer key, ``studentId``) of a query the route would take as it is, or None when
    the route should decide: an unknown or repeated parameter, or a value it checks."""
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
    if requested is not None and not 1 <= len(requested) <= MAX_ID_LENGTH:
        return None
    days = 0
    if path == STATISTICS:
        text = given.get("days")
        if text is None:
            days = DEFAULT_DAYS
        elif text.isascii() and text.isdigit() and text == str(int(text)):
            days = int(text)
            if not 1 <= days <= MAX_DAYS:
                return None
        else:
            return None
    return answer_key(path, tz, days), requested


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of the one ``Authorization: Bearer`` header, as ``HTTPBearer`` reads it."""
    found: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                return None
            found = value
    if found is None:
        return None
    scheme, token = get_authorization_scheme_param(found.decode("latin-1"))
    return token if scheme.lower() == "bearer" and token else None


class KeptAnswers:
    """Pure ASGI middleware: kept dashboard answers without the app (see the module)."""

    def __init__(self, app: ASGIApp, api: Any) -> None:
        self.app = app
        self.api = api  # the FastAPI app: its state and routes
        self._routes: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in PARAMETERS:
            try:
                body = self._kept(scope)
                if body is not None:
                    scope["route"] = self._route(scope["path"])  # for the request metrics
            except Exception:  # a bug here must not cost the answer: the route gives it
                log.exception("kept dashboard answer failed; answering through the route")
                body = None
            if body is not None:
                await send({
                    "type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json")],
                })  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _kept(self, scope: Scope) -> bytes | None:
        state = self.api.state
        cache: DashboardCache | None = state.dashboards
        if cache is None or not cache.fresh():
            return None
        parsed = request_key(scope["path"], scope.get("query_string", b""))
        token = bearer_token(scope["headers"])
        if parsed is None or token is None:
            return None
        key, requested = parsed
        try:
            student = student_to_read(decode_token(token, state.settings.jwt_secret), requested)
        except AuthError:
            return None
        return kept_body(cache, state.client, student, key, state.clock())

    def _route(self, path: str) -> Any:
        """The route the request would have matched (``api.observability`` labels by it)."""
        if self._routes is None:
            from api.routes.dashboard import router  # it imports this module

            self._routes = {
                route.path: route
                for route in router.routes
                if getattr(route, "path", None) in PARAMETERS and "GET" in route.methods
            }
        return self._routes[path]
