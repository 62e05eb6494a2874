"""The wire format of the docs/ingest.md routes: answers as pydantic models, bodies as JSON schemas.

The routes read their bodies themselves (a byte limit, one answer per event,
xAPI's own 400), so FastAPI does not derive the request bodies from a model:
``EVENTS_BODY`` and ``STATEMENTS_BODY`` document them in ``/openapi.json`` (and
give schemathesis something to generate). ``EVENTS_BODY`` is the event schema itself
(``schemas.events.LearningEvent``); ``STATEMENTS_BODY`` is the part of an xAPI
statement that ``schemas.xapi`` reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.models import ApiModel
from schemas.events import LearningEvent

MAX_EVENTS = 1000  # docs/ingest.md: a POST /api/events body holds 1-1,000 events


class EventRejection(ApiModel):
    """One event of the batch that was not produced, and why."""

    index: int = Field(description="0-based position in the posted array")
    event_id: str | None = Field(description="its eventId when it had a string one")
    field: str = Field(description="the field at fault; `event` when it is the whole event")
    message: str


class EventsAnswer(ApiModel):
    """POST /api/events: how many events Kafka acknowledged, and the ones refused."""

    accepted: int
    rejected: list[EventRejection]


class StatementProblem(ApiModel):
    """Why a statement was refused: its index (null: the body as a whole) and field."""

    index: int | None
    field: str = Field(description="dotted path in the statement, e.g. `result.score.scaled`")
    message: str


class StatementProblems(ApiModel):
    """A 400 of /xapi/statements: nothing of the request was produced."""

    detail: list[StatementProblem]


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


EVENTS_BODY = _json_body(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_EVENTS,
        "items": LearningEvent.model_json_schema(by_alias=True),
    },
    "1-1,000 learning events of docs/api.md",
)

_ACTIVITY = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "definition": {"type": "object", "properties": {"type": {"type": "string"}}},
    },
}
STATEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["actor", "verb", "object"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 128},
        "actor": {
            "type": "object",
            "properties": {
                "account": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "homePage": {"type": "string"}},
                },
                "mbox": {"type": "string"},
                "mbox_sha1sum": {"type": "string"},
                "openid": {"type": "string"},
            },
        },
        "verb": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string", "minLength": 1}},
        },
        "object": _ACTIVITY,
        "result": {
            "type": "object",
            "properties": {
                "completion": {"type": "boolean"},
                "duration": {"type": "string", "example": "PT3M15S"},
                "score": {"type": "object", "properties": {"scaled": {"type": "number"}}},
            },
        },
        "context": {
            "type": "object",
            "properties": {
                "contextActivities": {
                    "type": "object",
                    "properties": {
                        "parent": {"type": "array", "items": _ACTIVITY},
                        "grouping": {"type": "array", "items": _ACTIVITY},
                    },
                }
            },
        },
        "timestamp": {"type": "string", "format": "date-time"},
    },
}
STATEMENTS_BODY = _json_body(
    {"oneOf": [STATEMENT_SCHEMA, {"type": "array", "items": STATEMENT_SCHEMA}]},
    "one xAPI 1.0.3 statement or an array of them",
)
STATEMENT_BODY = _json_body(STATEMENT_SCHEMA, "one xAPI 1.0.3 statement")
