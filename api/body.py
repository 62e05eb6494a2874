"""Reading a request body under a byte limit (docs/api.md: a body over its limit is a 413).

``read_body`` refuses at once when ``Content-Length`` announces more than the
limit (nothing is read), and otherwise stops reading as soon as the bytes
received pass it (chunked bodies announce nothing), so an oversized body
never sits in memory whole. ``too_large`` is the 413 answer:
``{"detail": "the body is over the limit of N bytes"}``.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class BodyTooLarge(Exception):
    """The body is (or announced to be) over ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over the limit of {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of ``request``; ``BodyTooLarge`` past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(error: BodyTooLarge, headers: dict[str, str] | None = None) -> JSONResponse:
    """The 413 answer for ``error``."""
    return JSONResponse(status_code=413, content={"detail": str(error)}, headers=headers)
