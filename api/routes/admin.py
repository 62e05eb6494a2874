"""``POST /admin/ops/{dataset}``: the operations tools' reads through a running process.

The embedded ClickHouse engine allows one process per data directory, so while
``make run`` holds it, ``eduknit check`` and ``eduknit resync`` read through this
route instead (``eduknit.ops_reader``). It runs only the fixed, read-only queries
of ``infra.ops_queries`` (no SQL from the caller), for an ``admin`` token only,
and answers their rows as JSON arrays, one per line, written by the engine.
Bad input is a 422, an unavailable ClickHouse a 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import APIRouter, Body, HTTPException, Path, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ClientDep, CurrentPrincipal
from api.errors import invalid_input
from api.models import ErrorBody, ValidationErrorBody
from api.store import StoreUnavailable
from infra import ops_queries

router = APIRouter(prefix="/admin", tags=["admin"])

ROW_FORMAT = "JSONCompactEachRow"
ROW_SETTINGS = {"output_format_json_quote_64bit_integers": 0}
Id = Annotated[str, Field(min_length=1, max_length=128)]


class OpsSelection(BaseModel):
    """Which students: ``ids``, or ``first`` and ``last`` (inclusive); ``n`` for ``sample``."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Id] | None = Field(None, max_length=ops_queries.MAX_IDS)
    first: Id | None = None
    last: Id | None = None
    n: int | None = Field(None, ge=1, le=ops_queries.MAX_IDS)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, invalid or expired token"},
    403: {"model": ErrorBody, "description": "not an admin token"},
    422: {"model": ValidationErrorBody, "description": "unknown dataset or bad selection"},
    503: {"model": ErrorBody, "description": "ClickHouse unavailable"},
}


@router.post(
    "/ops/{dataset}",
    summary="Rows of one operations query (admin)",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}}, **ERRORS},
)
async def ops_rows(
    dataset: Annotated[str, Path(max_length=32)],
    principal: CurrentPrincipal,
    client: ClientDep,
    selection: Annotated[OpsSelection | None, Body()] = None,
) -> Response:
    if principal.role != "admin":
        raise HTTPException(status_code=403, detail="an admin token is required")
    chosen = selection.model_dump(exclude_none=True) if selection is not None else {}
    try:
        sql, parameters = ops_queries.statement(dataset, chosen)
    except ValueError as exc:
        field = "dataset" if dataset not in ops_queries.DATASETS else "selection"
        location = "path" if field == "dataset" else "body"
        raise invalid_input(field, str(exc), location=location) from None
    try:
        rows = await run_in_threadpool(
            client.raw_query, sql, parameters=parameters, fmt=ROW_FORMAT, settings=ROW_SETTINGS
        )
    except (ClickHouseError, OSError) as exc:
        raise StoreUnavailable("ClickHouse is unavailable; try again shortly") from exc
    return Response(content=rows, media_type="application/x-ndjson")
