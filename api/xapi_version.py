"""Every answer under ``/xapi/`` carries ``X-Experience-API-Version``, whoever gives it.

An LRS states its xAPI version on every response (xAPI 1.0.3, Part Three §6.2),
including the ones no xAPI route wrote: a 413 or a 422 of the body limits
(``api.limits``), a 401. ``XapiVersionHeader`` is a pure ASGI middleware that
adds the header to such answers (an answer that has it already keeps its own).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/xapi/"
VERSION = "1.0.3"
_NAME = b"x-experience-api-version"


class XapiVersionHeader:
    """Adds the xAPI version header to every answer under ``PREFIX``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == _NAME for name, _ in headers):
                    headers.append((_NAME, VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)
