"""``/xapi/statements``: the part of an xAPI 1.0.3 Learning Record Store that docs/ingest.md names.

- ``POST`` takes one statement or an array of them and answers **200** with
  their ids in order (an id is made for a statement without one);
- ``PUT ?statementId=…`` takes one statement (what Open edX's LRS client sends
  for a single statement that has an id) and answers **204**.

Each statement goes through ``schemas.xapi``; the events it makes are checked
by the worker's own parser (``api.ingest``) and produced to ``learning-events``
keyed by ``studentId``, answered once Kafka acknowledged them all (503 when it
could not: re-sending counts nothing twice). Statements outside the mapping table are
accepted and counted in ``eduknit_api_xapi_statements_total`` by verb.

All or nothing: any bad statement -> **400** ``{"detail": [{"index", "field",
"message"}]}`` (every bad statement of the body, 0-based index, the statement
field named) and nothing of the request is produced. Also 400: a body that is
not JSON (index null, field ``body``), an ``X-Experience-API-Version`` other
than 1.0.x. A body over ``EDUKNIT_MAX_BATCH_BODY_BYTES`` is 413; more than
1,000 statements 400. Auth (``api.xapi_auth``): 401 with both challenges, 403
for a bearer token of another role. Every answer carries
``X-Experience-API-Version: 1.0.3``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import AuthError
from api.body import BodyTooLarge, read_body, too_large
from api.deps import ClockDep, PublisherDep, SettingsDep
from api.ingest import Accepted, EventRules, check_event, off_the_loop, publish_all
from api.ingest_models import (
    MAX_EVENTS,
    STATEMENT_BODY,
    STATEMENTS_BODY,
    StatementProblems,
)
from api.models import ErrorBody
from api.observability import INGESTED_EVENTS, XAPI_STATEMENTS
from api.publisher import EventPublisher, PublishError
from api.xapi_auth import CHALLENGE, xapi_caller
from api.xapi_version import VERSION
from infra.settings import Settings
from schemas.xapi import InvalidStatements, Problem, Translation, translate_all

router = APIRouter(prefix="/xapi", tags=["xapi"])
ROUTE = "/xapi/statements"
VERSION_HEADER = "X-Experience-API-Version"  # api.xapi_version adds it to every answer
HEADERS = {VERSION_HEADER: VERSION}
ACCEPTED_VERSIONS = re.compile(r"1\.0(\.\d+)?")
MAX_VERB_LABELS = 100  # distinct verbs named in the metric; later ones count as "other"
_verb_labels: set[str] = set()

VersionHeader = Annotated[
    str | None,
    Header(alias=VERSION_HEADER, description="the xAPI version of the client: 1.0.x"),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": StatementProblems, "description": "not statements; nothing was produced"},
    401: {"model": ErrorBody, "description": "no or wrong credentials (Basic or Bearer)"},
    403: {"model": ErrorBody, "description": "a bearer token whose role is not `service`"},
    413: {"model": ErrorBody, "description": "body over EDUKNIT_MAX_BATCH_BODY_BYTES"},
    503: {"model": ErrorBody, "description": "Kafka did not acknowledge the events"},
}


async def get_caller(request: Request, settings: SettingsDep) -> str:
    """The authenticated poster (``api.xapi_auth``), else 401/403 with the xAPI headers."""
    try:
        return xapi_caller(request.headers.get("authorization"), settings)
    except AuthError as exc:
        headers = {**HEADERS, "WWW-Authenticate": CHALLENGE} if exc.status == 401 else HEADERS
        raise HTTPException(status_code=exc.status, detail=exc.message, headers=headers) from None


Caller = Annotated[str, Depends(get_caller)]


@router.post(
    "/statements",
    response_model=list[str],
    responses=ERRORS,
    openapi_extra=STATEMENTS_BODY,
)
async def post_statements(
    request: Request,
    caller: Caller,
    publisher: PublisherDep,
    settings: SettingsDep,
    clock: ClockDep,
    version: VersionHeader = None,
) -> Response:
    """Store one statement or an array of them: their ids in order."""
    body = await _receive(request, settings, version)
    if isinstance(body, Response):
        return body
    done = await _ingest(body, publisher, settings, clock())
    if isinstance(done, Response):
        return done
    ids = orjson.dumps([translation.statement_id for translation in done])
    return Response(ids, media_type="application/json", headers=HEADERS)


@router.put(
    "/statements",
    status_code=204,
    response_class=Response,
    responses=ERRORS,
    openapi_extra=STATEMENT_BODY,
)
async def put_statement(
    request: Request,
    caller: Caller,
    publisher: PublisherDep,
    settings: SettingsDep,
    clock: ClockDep,
    statement_id: Annotated[str | None, Query(alias="statementId")] = None,
    version: VersionHeader = None,
) -> Response:
    """Store one statement under ``statementId`` (Open edX's client does this unbatched)."""
    body = await _receive(request, settings, version)
    if isinstance(body, Response):
        return body
    if not statement_id:
        return _bad([Problem(None, "statementId", "the query parameter statementId is required")])
    if not isinstance(body, dict):
        return _bad([Problem(None, "body", "must be one statement (a JSON object)")])
    if body.setdefault("id", statement_id) != statement_id:
        return _bad([Problem(0, "id", "differs from the statementId parameter")])
    done = await _ingest(body, publisher, settings, clock())
    if isinstance(done, Response):
        return done
    return Response(status_code=204, headers=HEADERS)


async def _receive(request: Request, settings: Settings, version: str | None) -> Any:
    """The decoded body, or the 400/413 answer."""
    if version is not None and not ACCEPTED_VERSIONS.fullmatch(version.strip()):
        return _bad([Problem(None, VERSION_HEADER, f"version {version!r} is not 1.0.x")])
    try:
        raw = await read_body(request, settings.max_batch_body_bytes)
    except BodyTooLarge as error:
        return too_large(error, HEADERS)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _bad([Problem(None, "body", f"not valid JSON: {exc}")])
    if isinstance(body, list) and len(body) > MAX_EVENTS:
        return _bad([Problem(None, "body", f"at most {MAX_EVENTS:,} statements per request")])
    return body


async def _ingest(
    body: Any, publisher: EventPublisher, settings: Settings, now: dt.datetime
) -> list[Translation] | Response:
    """Translate, check and produce; the translations, or the 400/503 answer."""
    try:
        translations, accepted = await off_the_loop(
            translate_and_check, body, EventRules.of(settings, now)
        )
    except InvalidStatements as invalid:
        return _bad(invalid.problems)
    try:
        await publish_all(publisher, accepted)
    except PublishError:
        headers = {**HEADERS, "Retry-After": "1"}
        return JSONResponse(
            status_code=503, content={"detail": "the events could not be produced"}, headers=headers
        )
    _count(translations, len(accepted))
    return translations


def translate_and_check(body: Any, rules: EventRules) -> tuple[list[Translation], list[Accepted]]:
    """The statements' translations and their events checked by the worker's parser;
    ``InvalidStatements`` naming every statement that is bad or makes a bad event."""
    translations = translate_all(body, now=rules.now)
    accepted: list[Accepted] = []
    problems: list[Problem] = []
    for index, translation in enumerate(translations):
        if translation.event is None:
            continue
        outcome = check_event(translation.event, rules)
        if isinstance(outcome, Accepted):
            accepted.append(outcome)
        else:
            problems.append(Problem(index, translation.source_of(outcome.field), outcome.reason))
    if problems:
        raise InvalidStatements(problems)
    return translations, accepted


def _count(translations: list[Translation], produced: int) -> None:
    INGESTED_EVENTS.labels(ROUTE, "accepted").inc(produced)
    seen = Counter(
        (_verb_label(t.verb), "ignored" if t.event is None else "counted") for t in translations
    )
    for (verb, outcome), n in seen.items():
        XAPI_STATEMENTS.labels(verb, outcome).inc(n)


def _verb_label(verb: str) -> str:
    """The verb as a metric label: the first ``MAX_VERB_LABELS`` verbs, then ``other``."""
    if verb in _verb_labels:
        return verb
    if len(_verb_labels) < MAX_VERB_LABELS and len(verb) <= 200:
        _verb_labels.add(verb)
        return verb
    return "other"


def _bad(problems: list[Problem]) -> JSONResponse:
    detail = [problem.as_dict() for problem in problems]
    return JSONResponse(status_code=400, content={"detail": detail}, headers=HEADERS)
