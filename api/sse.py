"""Server-sent events: the ``text/event-stream`` wire format and the response writing it.

``event_frame`` writes one event (``event:``, ``id:``, one ``data:`` line: the JSON
of a dashboard has no raw newline); ``KEEP_ALIVE`` is the comment a quiet stream
sends; ``last_event_id`` reads the ``Last-Event-ID`` request header (anything but
a non-negative integer is taken as absent: our ids are integers, and a client
that sends something else gets the current state as if it had sent nothing).

``EventStreamResponse`` is an ASGI response that writes the frames one
``StreamSource`` hands over, as they come, and nothing else: it buffers nothing
(each frame is one ``http.response.body`` message with ``more_body``) and ends
when the source ends (``next`` returns None), when the client goes away (an
``http.disconnect`` read by a task of its own, so a client leaving is noticed at
once, not at the next write), or when a write fails (ASGI 2.4 servers raise
``OSError``). In every case ``source.close`` runs before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
KEEP_ALIVE = b": keep-alive\n\n"
MAX_EVENT_ID = 2**63 - 1  # an id beyond this is not one of ours


def event_frame(event: str, event_id: int, data: bytes) -> bytes:
    """One event; ``data`` must hold no newline (compact JSON holds none)."""
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event.encode(), event_id, data)


def last_event_id(header: str | None) -> int | None:
    """The id of a ``Last-Event-ID`` header, or None when absent or not one of ours."""
    if header is None:
        return None
    text = header.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_EVENT_ID else None


class StreamSource(Protocol):
    """What an ``EventStreamResponse`` writes (``api.stream_hub.StreamClient``)."""

    async def next(self, keepalive: float) -> bytes | None:
        """The next frame, ``KEEP_ALIVE`` after ``keepalive`` quiet seconds, None: the end."""
        ...

    def close(self) -> None:
        """The stream ended (any reason): free what it holds. Called once, may be again."""
        ...


class EventStreamResponse(Response):
    """``200 text/event-stream`` writing ``first`` (if any), then what ``source`` hands over."""

    media_type = MEDIA_TYPE

    def __init__(self, source: StreamSource, first: bytes | None, keepalive: float) -> None:
        self.source = source
        self.first = first
        self.keepalive = keepalive
        self.status_code = 200
        self.background = None
        # no-store: a cache must not keep a stream; X-Accel-Buffering: nginx must not buffer it
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.create_task(self._until_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            frame, self.first = self.first, None
            if frame is None:
                frame = await self.source.next(self.keepalive)
            while frame is not None:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                frame = await self.source.next(self.keepalive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client is gone (a server of ASGI 2.4 says so by raising)
            pass
        finally:
            watcher.cancel()
            self.source.close()

    async def _until_disconnect(self, receive: Receive) -> None:
        with contextlib.suppress(OSError):
            while (await receive())["type"] != "http.disconnect":
                pass
        self.source.close()
