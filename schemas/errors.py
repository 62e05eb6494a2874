"""The one rejection error for bad input, and how pydantic errors become reasons.

Anything that raises ``InvalidMessage`` goes to the dead-letter topic with its
reason; any other exception is a bug and fails loudly.
"""

from __future__ import annotations

from pydantic import ValidationError


class InvalidMessage(ValueError):
    """A message that breaks the contract; ``reason`` says why, ``field`` where."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def first_error(exc: ValidationError) -> InvalidMessage:
    """The first validation problem as an ``InvalidMessage`` naming the field."""
    error = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "json_invalid":
        return InvalidMessage(f"not valid JSON: {error['msg']}")
    if kind in ("model_type", "model_attributes_type", "dict_type") and not loc:
        return InvalidMessage("not a JSON object")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if not loc:
        # model-level rule such as "lessonId is required for lesson_progress"
        field = message.split(" ", 1)[0] if " is required" in message else None
        if field is None and message.startswith("timezone "):
            field = "timezone"
        return InvalidMessage(message, field=field)
    if kind == "missing":
        return InvalidMessage(f"field '{loc}' is required", field=loc)
    return InvalidMessage(f"field '{loc}': {message}", field=loc)
