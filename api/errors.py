"""How the API answers failures; installed on the app by ``install``.

- invalid input anywhere (query, body, header) -> 422
  ``{"detail": [{"field", "location", "message", "type"}]}``; ``field`` is the
  wire name (``days``, ``timeSpent``) or ``body`` when the body as a whole is bad
  (missing, not JSON, not an object). Routes raise ``invalid_input`` for checks
  pydantic cannot make (e.g. ``occurredAt`` too far in the future).
- ClickHouse unreachable -> 503 ``{"detail": "..."}`` (``StoreUnavailable``).
- anything else is a bug: logged with its traceback, 500 ``{"detail": "internal error"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.store import StoreUnavailable

log = logging.getLogger(__name__)

_LOCATIONS = ("query", "body", "path", "header", "cookie")
_WHOLE_BODY_TYPES = ("json_invalid", "model_attributes_type", "dict_type", "model_type")


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """FastAPI/pydantic error dicts as ``{field, location, message, type}``."""
    problems: list[dict[str, str]] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        kind = str(error.get("type", "value_error"))
        field = ".".join(path) if path and kind not in _WHOLE_BODY_TYPES else location
        message = str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        if kind == "missing":
            message = f"{field} is required" if field != "body" else "a JSON body is required"
        elif kind in _WHOLE_BODY_TYPES and location == "body":
            message = f"the body must be a JSON object: {message}"
        problems.append({"field": field, "location": location, "message": message, "type": kind})
    return problems


def invalid_input(field: str, message: str, location: str = "body") -> RequestValidationError:
    """A 422 for one field, raised by a route after pydantic's own checks."""
    return RequestValidationError(
        [{"loc": (location, field), "msg": message, "type": "value_error"}]
    )


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": field_problems(exc.errors())})


async def _on_store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "1"})


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error"})


def install(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(Exception, _on_bug)
