"""``POST /api/events``: a batch of learning events from a backend producer (role ``service``).

The body is a JSON array of 1-1,000 events. Each is checked by the worker's own
parser (``api.ingest.check_event``); valid ones are produced to
``learning-events`` keyed by ``studentId``, invalid ones are not and are listed
with their index, ``eventId``, field and reason. The answer is **200**
``{"accepted", "rejected"}`` once Kafka acknowledged every accepted event,
**503** when it could not (re-sending the batch is safe: each ``eventId``
counts once). Refused before anything is produced: no or a bad token 401, a
role other than ``service`` 403, a body over ``EDUKNIT_MAX_BATCH_BODY_BYTES``
413, a body that is not JSON or not an array of 1-1,000 elements 422 (the
project's body, ``field: "body"``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from api.body import BodyTooLarge, read_body, too_large
from api.deps import ClockDep, CurrentPrincipal, PublisherDep, SettingsDep
from api.errors import invalid_input
from api.ingest import Accepted, EventRules, check_event, off_the_loop, publish_all
from api.ingest_models import EVENTS_BODY, MAX_EVENTS, EventsAnswer
from api.models import ErrorBody, ValidationErrorBody
from api.observability import INGESTED_EVENTS
from api.publisher import PublishError

router = APIRouter(prefix="/api", tags=["ingest"])
ROUTE = "/api/events"


@router.post(
    "/events",
    response_model=EventsAnswer,
    responses={
        401: {"model": ErrorBody, "description": "missing, invalid or expired token"},
        403: {"model": ErrorBody, "description": "the token's role is not `service`"},
        413: {"model": ErrorBody, "description": "body over EDUKNIT_MAX_BATCH_BODY_BYTES"},
        422: {"model": ValidationErrorBody, "description": "not a JSON array of 1-1,000"},
        503: {"model": ErrorBody, "description": "Kafka did not acknowledge the events"},
    },
    openapi_extra=EVENTS_BODY,
)
async def post_events(
    request: Request,
    principal: CurrentPrincipal,
    publisher: PublisherDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """Produce 1-1,000 events of docs/api.md; answer per event once Kafka acknowledged them."""
    if principal.role != "service":
        raise HTTPException(
            status_code=403, detail="only a token with the role 'service' may post events"
        )
    try:
        body = await read_body(request, settings.max_batch_body_bytes)
    except BodyTooLarge as error:
        return too_large(error)
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_input("body", f"not valid JSON: {exc}") from None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENTS:
        raise invalid_input("body", f"must be a JSON array of 1 to {MAX_EVENTS:,} events")
    accepted, rejected = await off_the_loop(check_all, items, EventRules.of(settings, clock()))
    try:
        await publish_all(publisher, accepted)
    except PublishError:
        raise HTTPException(
            status_code=503, detail="the events could not be produced", headers={"Retry-After": "1"}
        ) from None
    INGESTED_EVENTS.labels(ROUTE, "accepted").inc(len(accepted))
    INGESTED_EVENTS.labels(ROUTE, "rejected").inc(len(rejected))
    answer = orjson.dumps({"accepted": len(accepted), "rejected": rejected})
    return Response(answer, media_type="application/json")


def check_all(items: list[Any], rules: EventRules) -> tuple[list[Accepted], list[dict[str, Any]]]:
    """The events the worker will count, and the others as ``rejected`` entries."""
    accepted: list[Accepted] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        outcome = check_event(item, rules)
        if isinstance(outcome, Accepted):
            accepted.append(outcome)
            continue
        event_id = item.get("eventId") if isinstance(item, dict) else None
        rejected.append({
            "index": index, "eventId": event_id if isinstance(event_id, str) else None,
            "field": outcome.field or "event", "message": outcome.reason,
        })  # fmt: skip
    return accepted, rejected
