"""Typed FastAPI dependencies: the app's resources and the caller's identity.

``create_app`` puts the settings, the ClickHouse client, the kept dashboards, the
event publisher and the clock on ``app.state``; routes get them through the ``Annotated`` aliases
here (all ``async`` so that resolving them costs no thread hop).
``CurrentPrincipal`` verifies the bearer token (``api.auth``): a missing or
invalid token is 401 with ``WWW-Authenticate: Bearer``, an unknown role 403.
"""

from __future__ import annotations

from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import AuthError, Principal, decode_token, token_policy
from api.dashboard_cache import DashboardCache
from api.publisher import EventPublisher
from api.timeutil import Clock
from infra.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="JWT signed with HS256 (EDUKNIT_JWT_SECRET)")


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_client(request: Request) -> Client:
    """The shared ClickHouse client (thread-safe; used from worker threads)."""
    return request.app.state.client  # type: ignore[no-any-return]


async def get_dashboards(request: Request) -> DashboardCache | None:
    """The kept dashboard payloads (None when the cache is off)."""
    return request.app.state.dashboards  # type: ignore[no-any-return]


async def get_publisher(request: Request) -> EventPublisher:
    """The producer of ``learning-events``."""
    return request.app.state.publisher  # type: ignore[no-any-return]


async def get_clock(request: Request) -> Clock:
    """The injected clock."""
    return request.app.state.clock  # type: ignore[no-any-return]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail=message,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller of an ``/api`` request."""
    if credentials is None:
        raise HTTPException(
            status_code=401,
            detail="missing bearer token (Authorization: Bearer <JWT>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    settings: Settings = request.app.state.settings
    try:
        return decode_token(credentials.credentials, settings.jwt_secret, token_policy(settings))
    except AuthError as exc:
        if exc.status == 401:
            raise _unauthorized(exc.message) from None
        raise HTTPException(status_code=exc.status, detail=exc.message) from None


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ClientDep = Annotated[Client, Depends(get_client)]
DashboardsDep = Annotated[DashboardCache | None, Depends(get_dashboards)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
ClockDep = Annotated[Clock, Depends(get_clock)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
