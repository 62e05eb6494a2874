"""What any request body may be: its size, and for JSON its syntax and nesting.

``BodyLimits`` is a pure ASGI middleware in front of every route, so every
endpoint (also one added later) gets the same answers before its own code runs:

- a body over its limit is **413** ``{"detail": "the body is over the limit of N
  bytes"}`` with ``Connection: close``: refused on ``Content-Length`` before a
  byte is read, and while reading a body that does not announce its size
  (chunked) as soon as it passes the limit, so it never sits in memory whole.
  The limit is ``EDUKNIT_MAX_BATCH_BODY_BYTES`` (4 MiB) for the routes that take
  batches (``BATCH_PATHS``: ``POST /api/events``, ``POST /xapi/statements``;
  another one opts in with ``batch_paths``), ``EDUKNIT_MAX_BODY_BYTES`` (64 KiB)
  for every other route;
- a JSON body (no ``Content-Type``, ``application/json`` or ``…+json``: what
  FastAPI parses as JSON) that is not valid JSON (bad syntax, invalid UTF-8, a
  lone surrogate, ``NaN``) or nests arrays and objects deeper than
  ``EDUKNIT_MAX_JSON_DEPTH`` (32) is **422** with the validation body of
  ``api.errors`` (``field`` ``body``), instead of FastAPI's 400 or a parser
  recursion error.

A body within the limits is handed to the route unchanged (replayed from the
bytes read). Requests without a body (no ``Content-Length``, not chunked) pass
untouched, so streams and reads cost nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_PATHS = ("/api/events", "/xapi/statements")
JSON_INVALID = "json_invalid"
JSON_TOO_DEEP = "json_too_deep"


class BodyTooLarge(Exception):
    """The body is (or announced to be) over ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over the limit of {limit} bytes")
        self.limit = limit


def too_deep(value: Any, limit: int) -> bool:
    """True when arrays and objects nest deeper than ``limit`` levels in ``value``."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def json_problem(body: bytes, max_depth: int) -> tuple[str, str] | None:
    """(type, message) of what is wrong with a JSON body, or None when it is fine."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            return JSON_TOO_DEEP, f"the JSON nests deeper than {max_depth} levels"
        return JSON_INVALID, f"the body is not valid JSON: {exc}"
    # Only a body with more brackets than the limit can nest deeper (the usual body has few).
    if body.count(b"[") + body.count(b"{") > max_depth and too_deep(value, max_depth):
        return JSON_TOO_DEEP, f"the JSON nests deeper than {max_depth} levels"
    return None


def _is_json(content_type: bytes | None) -> bool:
    """Whether FastAPI would parse a body of this type as JSON."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class BodyLimits:
    """Pure ASGI middleware: body size, JSON syntax and nesting (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        max_batch_bytes: int,
        max_depth: int,
        batch_paths: Iterable[str] = BATCH_PATHS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_batch_bytes = max_batch_bytes
        self.max_depth = max_depth
        self.batch_paths = frozenset(batch_paths)

    def limit(self, path: str) -> int:
        """The largest body a request to ``path`` may send."""
        return self.max_batch_bytes if path in self.batch_paths else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: bytes | None = None
        chunked = False
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-type":
                content_type = value
        if declared is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        limit = self.limit(scope["path"])
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        try:
            body, end = await _read(receive, limit)
        except BodyTooLarge:
            await _too_large(send, limit)
            return
        if end is not None:  # the client went away while sending
            return
        if body and _is_json(content_type):
            problem = json_problem(body, self.max_depth)
            if problem is not None:
                await _invalid(send, *problem)
                return
        await self.app(scope, _replay(body, receive), send)


async def _read(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The whole body, or ``BodyTooLarge`` past ``limit`` bytes; the second value is the
    disconnect message when the client left first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then what the client sends (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    content = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _too_large(send: Send, limit: int) -> None:
    await _answer(send, 413, {"detail": str(BodyTooLarge(limit))}, close=True)


async def _invalid(send: Send, kind: str, message: str) -> None:
    """The 422 of ``api.errors`` for the body as a whole."""
    problem = {"field": "body", "location": "body", "message": message, "type": kind}
    await _answer(send, 422, {"detail": [problem]})
