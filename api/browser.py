"""What browsers get: CORS for the configured origins, and ``/docs`` that works offline.

- **CORS** (``install_cors``): the origins of ``EDUKNIT_CORS_ORIGINS`` (none by
  default: the dashboard page is served by the API, same origin) may call the
  API from a page: preflights answered for ``GET``, ``POST``, ``PUT`` with the
  headers ``Authorization``, ``Content-Type`` and ``Last-Event-ID``; answers
  expose ``Retry-After`` and ``WWW-Authenticate``. Tokens travel in a header,
  never a cookie, so credentials are not allowed. A preflight from another
  origin is answered 400 without CORS headers (the browser then refuses); a
  simple request from it is answered as usual, without CORS headers.
- **Docs** (``install_docs``): ``/docs`` (Swagger UI) and ``/redoc`` load their
  JavaScript, CSS and icon from ``/docs-assets`` on this server: the files the
  pinned ``fastapi-offline`` package (MIT) ships, Swagger UI's bundle
  (Apache-2.0) and ReDoc's (MIT), instead of a public CDN; no Google fonts, no
  validator badge. So they work without a network.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
CORS_METHODS = ["GET", "POST", "PUT"]
CORS_HEADERS = ["Authorization", "Content-Type", "Last-Event-ID"]
CORS_EXPOSED = ["Retry-After", "WWW-Authenticate"]
CORS_MAX_AGE = 600


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Answer CORS for ``origins`` (nothing when empty)."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        allow_credentials=False,
        max_age=CORS_MAX_AGE,
    )


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI and ReDoc from local assets (create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not added)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    title = app.title

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
