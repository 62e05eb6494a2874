"""Health, readiness and metrics endpoints (no authentication).

- ``GET /healthz``: the process is up; always 200 ``{"status": "ok"}``.
- ``GET /readyz``: 200 when ClickHouse answers ``SELECT 1`` and the Kafka
  broker answers a metadata request, else 503; the body says which is down.
- ``GET /metrics``: Prometheus text exposition of the default registry.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import ClientDep, PublisherDep
from api.models import Readiness
from api.store import StoreUnavailable, ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="ClickHouse and Kafka are reachable",
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
)
async def readyz(client: ClientDep, publisher: PublisherDep, response: Response) -> Readiness:
    try:
        await run_in_threadpool(ping, client)
        clickhouse = "ok"
    except StoreUnavailable as exc:
        clickhouse = f"down: {exc}"
    try:
        kafka = "ok" if await run_in_threadpool(publisher.ready) else "down: broker not reachable"
    except Exception as exc:  # a broken publisher means "not ready", not a 500
        kafka = f"down: {exc}"
    ok = clickhouse == "ok" and kafka == "ok"
    response.status_code = 200 if ok else 503
    return Readiness(status="ok" if ok else "unavailable", clickhouse=clickhouse, kafka=kafka)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
