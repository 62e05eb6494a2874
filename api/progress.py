"""``POST progress/update``: the body becomes a ``lesson_progress`` event, then we wait.

``build_event`` makes the event in the wire format of docs/api.md § Learning events (camelCase):
``eventId`` is a new uuid4 hex when absent, ``occurredAt`` is now (UTC, ``Z``)
when absent, and a given ``occurredAt`` must be RFC 3339 with an offset, not
before 1970 and not further ahead than the worker accepts
(``EDUKNIT_MAX_FUTURE_SECONDS``, 24 h) — the API refuses with 422 what the
worker would send to the dead-letter topic. The event is then validated by
``schemas.events.LearningEvent`` exactly as the worker will parse it, ids with
control characters included (``check_ids``).

``wait_applied`` polls ClickHouse until the worker has counted the event or the
wait limit passes; a failing ClickHouse only means "not seen yet".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.errors import invalid_input
from api.models import ProgressUpdateRequest
from api.store import StoreUnavailable, event_applied
from api.timeutil import iso_utc, parse_occurred_at
from schemas.errors import InvalidMessage, first_error
from schemas.events import EPOCH, LearningEvent, check_ids

log = logging.getLogger(__name__)

POLL_FIRST_SECONDS = 0.025
POLL_MAX_SECONDS = 0.05


def _wire_time(moment: dt.datetime) -> str:
    """RFC 3339 keeping the client's offset (which decides the local date)."""
    if moment.utcoffset() == dt.timedelta(0):
        return iso_utc(moment)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec)


def build_event(
    body: ProgressUpdateRequest, student_id: str, now: dt.datetime, max_future: dt.timedelta
) -> dict[str, Any]:
    """The ``lesson_progress`` event for ``body``; raises a 422 ``RequestValidationError``."""
    if body.occurred_at is None:
        occurred = iso_utc(now)
    else:
        moment = parse_occurred_at(body.occurred_at)  # the model checked the format
        if moment < EPOCH:
            raise invalid_input("occurredAt", "must not be before 1970-01-01T00:00:00Z")
        if moment - now > max_future:
            hours = max_future.total_seconds() / 3600
            raise invalid_input("occurredAt", f"must not be more than {hours:g} h in the future")
        occurred = _wire_time(moment)
    event: dict[str, Any] = {
        "eventId": body.event_id or uuid.uuid4().hex,
        "type": "lesson_progress",
        "studentId": student_id,
        "courseId": body.course_id,
        "lessonId": body.lesson_id,
        "completed": body.completed,
        "timeSpent": body.time_spent,
        "occurredAt": occurred,
    }
    if body.module_id is not None:
        event["moduleId"] = body.module_id
    if body.timezone is not None:
        event["timezone"] = body.timezone
    try:
        check_ids(LearningEvent.model_validate_json(orjson.dumps(event)))
    except ValidationError as exc:
        raise _unprocessable(first_error(exc)) from None
    except InvalidMessage as exc:
        raise _unprocessable(exc) from None
    return event


def _unprocessable(problem: InvalidMessage) -> RequestValidationError:
    field = problem.field or "body"
    return RequestValidationError(
        [{"loc": ("body", field), "msg": problem.reason, "type": "value_error"}]
    )


async def wait_applied(client: Client, student_id: str, event_id: str, timeout: float) -> bool:
    """True once ``learning_events`` holds the event, False when ``timeout`` s passed first."""
    deadline = time.monotonic() + timeout
    interval = POLL_FIRST_SECONDS
    warned = False
    while True:
        try:
            if await run_in_threadpool(event_applied, client, student_id, event_id):
                return True
        except StoreUnavailable as exc:
            if not warned:
                log.warning("cannot check whether event %s was applied: %s", event_id, exc)
                warned = True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(interval, remaining))
        interval = min(POLL_MAX_SECONDS, interval * 1.5)
