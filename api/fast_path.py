"""The ASGI fast path: kept dashboard answers served without FastAPI.

``KeptAnswerPath`` is a pure ASGI middleware. A GET of ``/realtime`` or
``/statistics`` whose query parameters are plain (``api.query_params``), whose
bearer token is valid and allows the read, and whose answer is kept and still
holds (``api.kept_answers``) is answered at once, without FastAPI's routing,
dependencies, models and serialisation (the API's CPU per /realtime poll went
from 1.0 to 0.2 ms; BENCHMARKS.md, § Reads). Anything else — no or a bad
token, a parameter the route does not know, one given twice, a value the route
would refuse, no kept answer, the change feed or the catalog copy stale — goes
on to the app unchanged, which answers it (and keeps what it answered from a
kept payload). So every status other than 200, every error body and every
answer computed for the first time come from the routes. A failure inside the
fast path is logged and the request goes on to the app.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import AuthError, decode_token, student_to_read, token_policy
from api.dashboard_cache import DashboardCache
from api.kept_answers import AnswerKey, answer_key, kept_body
from api.query_params import PARAMETERS, plain_query

log = logging.getLogger(__name__)


def request_key(path: str, query: bytes) -> tuple[AnswerKey, str | None] | None:
    """(answer key, ``studentId``) of a query the route would take as it is, or None."""
    plain = plain_query(path, query)
    if plain is None:
        return None
    tz, days, requested = plain
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


async def send_json(send: Send, body: bytes) -> None:
    """Answer 200 with the JSON ``body`` (a fast path's whole response)."""
    await send({
        "type": "http.response.start", "status": 200,
        "headers": [(b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class KeptAnswerPath:
    """Pure ASGI middleware: kept dashboard answers without the app (see the module).

    ``routes``: the app's routes; the GET routes of ``PARAMETERS`` among them label
    the request metrics of an answer served here (``api.observability``).
    """

    def __init__(self, app: ASGIApp, api: Any, routes: Iterable[Any]) -> None:
        self.app = app
        self.api = api  # the FastAPI app: its state
        self.routes = {
            route.path: route
            for route in routes
            if getattr(route, "path", None) in PARAMETERS and "GET" in route.methods
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in self.routes:
            try:
                body = self._kept(scope)
                if body is not None:
                    scope["route"] = self.routes[scope["path"]]  # for the request metrics
            except Exception:  # a bug here must not cost the answer: the route gives it
                log.exception("kept dashboard answer failed; answering through the route")
                body = None
            if body is not None:
                await send_json(send, body)
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
        settings = state.settings
        try:
            principal = decode_token(token, settings.jwt_secret, token_policy(settings))
            student = student_to_read(principal, requested)
        except AuthError:
            return None
        return kept_body(cache, state.client, student, key, state.clock())
