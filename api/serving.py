"""Serving the app with uvicorn so that shutting down ends the live streams first.

uvicorn's graceful shutdown stops accepting connections, then waits (without a
limit by default) for every open response to finish; a server-sent-events
stream never finishes by itself, so the process would hang until a second
signal. ``ApiServer`` is ``uvicorn.Server`` that first ends the app's open streams
(``app.state.streams``, ``api.stream_hub``): their clients reconnect, to this API
once it is back or to another replica.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn


class ApiServer(uvicorn.Server):
    """``uvicorn.Server`` ending the app's live streams when it shuts down."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hub: Any = getattr(getattr(self.config.app, "state", None), "streams", None)
        if hub is not None:
            hub.stop()
        await super().shutdown(sockets)
