"""``GET /``: the dashboard page (docs/live-dashboard.md), static files served from ``api/static``.

No build step and no asset from another host: ``index.html``, ``style.css`` and
one ES module per view under ``/static/``. The page is the API's reference
client: it signs in with a token (a field, or ``#token=`` in the URL fragment,
which never reaches the server), follows ``/api/dashboard/stream`` and reads
``/api/dashboard/statistics``, sending the token in the ``Authorization`` header
only. The page's answers carry a Content-Security-Policy that allows this
origin alone (no inline script, no other host) and ``Referrer-Policy:
no-referrer``; ``no-cache`` makes a browser check for a newer file each load.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class _StaticFiles(StaticFiles):
    """Starlette's static files with the page's headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()),
                ]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static/``."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
