"""The FastAPI application: ``create_app`` wires settings, ClickHouse, Kafka and clock.

``create_app(settings, client, publisher, clock=utc_now)`` builds the app around
resources the caller owns (the all-in-one runner passes its shared ClickHouse
client). ``app_from_env`` is the uvicorn factory for a standalone API process
(``uvicorn --factory api.main:app_from_env``): it opens the shared client and a
Kafka producer from ``get_settings()`` and closes the producer at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI

from api import errors
from api.observability import MetricsMiddleware
from api.pool import ClientPool, read_pool
from api.publisher import EventPublisher, KafkaEventPublisher
from api.routes import dashboard, health
from api.timeutil import Clock, utc_now
from infra.clickhouse import shared_client
from infra.settings import Settings, get_settings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = (
    "Real-time student dashboard of EduKnit Learn. Every `/api` request needs "
    "`Authorization: Bearer <JWT>` (HS256). Invalid input is answered with 422 and "
    '`{"detail": [{"field", "location", "message", "type"}]}`.'
)


def create_app(
    settings: Settings,
    client: Client,
    publisher: EventPublisher,
    clock: Clock = utc_now,
    *,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """The dashboard API on the given resources (not closed by the app).

    Reads go through ``api.pool.read_pool``: several connections when ``client``
    is this process's shared embedded engine (closed with the app), else ``client``.
    """
    reads = read_pool(settings, client)

    @asynccontextmanager
    async def lifespan_with_pool(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            if isinstance(reads, ClientPool):
                reads.close()

    app = FastAPI(
        title="EduKnit Learn dashboard API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan_with_pool,
    )
    app.state.settings = settings
    app.state.client = reads
    app.state.publisher = publisher
    app.state.clock = clock
    errors.install(app)
    app.add_middleware(MetricsMiddleware)
    app.include_router(dashboard.router)
    app.include_router(health.router)
    return app


def app_from_env() -> FastAPI:
    """A standalone API process configured from the environment (uvicorn factory)."""
    settings = get_settings()
    client = shared_client(settings.resolved_clickhouse_url)
    publisher = KafkaEventPublisher(settings.bootstrap_servers)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            publisher.close()

    return create_app(settings, client, publisher, lifespan=lifespan)
