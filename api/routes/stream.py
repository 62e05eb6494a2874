"""``GET /api/dashboard/stream``: a student's dashboard as server-sent events.

The same token, parameters and errors as ``/realtime`` (the same dependencies:
401, 403 and 422 with the same bodies; 503 when ClickHouse cannot be read or the
change feed is stale), all decided before the stream starts. Then ``200
text/event-stream``: at once a ``dashboard`` event with the ``/realtime`` body
(unless ``Last-Event-ID`` is the current id), then one event per change of the
student's dashboard, ``: keep-alive`` after ``EDUKNIT_STREAM_KEEPALIVE_SECONDS``
without one. The pushing is ``api.stream_hub``'s; the writing ``api.sse``'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request

from api.auth import AuthError, student_to_read
from api.deps import CurrentPrincipal, SettingsDep
from api.query_params import StudentQuery, TzQuery
from api.routes.dashboard import ERRORS
from api.sse import MEDIA_TYPE, EventStreamResponse, last_event_id
from api.store import StoreUnavailable
from api.stream_hub import StreamHub

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="the id of the last event received: the current state is sent at once "
        "only when it differs (anything but a non-negative integer counts as absent)",
    ),
]


def _json_error(status: int) -> dict[str, Any]:
    """``ERRORS[status]`` as JSON (a ``model`` would be documented as the stream's type)."""
    name = ERRORS[status]["model"].__name__
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"description": ERRORS[status]["description"],
            "content": {"application/json": {"schema": schema}}}  # fmt: skip


STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: `dashboard` events (`id`: the state's version, "
        "`data`: the /realtime body) and `: keep-alive` comments",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
    },
    **{status: _json_error(status) for status in ERRORS},
}


@router.get("/stream", status_code=200, response_class=EventStreamResponse, responses=STREAM_DOC)
async def stream(
    request: Request,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    tz: TzQuery = None,
    student_id: StudentQuery = None,
    last_event: LastEventId = None,
) -> EventStreamResponse:
    """The dashboard of ``/realtime``, pushed again each time it changes."""
    try:
        student = student_to_read(principal, student_id)
    except AuthError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message) from None
    hub: StreamHub = request.app.state.streams
    if not hub.fresh():  # the change feed cannot read ClickHouse: no live updates now
        raise StoreUnavailable("ClickHouse is unavailable; try again shortly")
    client = hub.join(student, tz)
    try:
        first = await hub.first_frame(client, last_event_id(last_event))
    except BaseException:  # 503 (StoreUnavailable) or cancelled: the stream never starts
        client.close()
        raise
    return EventStreamResponse(client, first, settings.stream_keepalive_seconds)
