"""Wire format of topic ``learning-events-dlq``: a rejected message and why.

The original payload is kept as text (invalid UTF-8 replaced), cut at
``PAYLOAD_LIMIT`` characters so one huge message cannot clog the topic.
"""

from __future__ import annotations

import datetime as dt

import orjson
from pydantic import BaseModel, ConfigDict, Field

TOPIC = "learning-events-dlq"
PAYLOAD_LIMIT = 16_384


class DeadLetter(BaseModel):
    """A message the pipeline did not count, with the reason."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    reason: str
    field: str | None = None
    source_topic: str = Field(alias="sourceTopic")
    partition: int
    offset: int
    key: str | None = None
    received_at: dt.datetime = Field(alias="receivedAt")
    payload: str
    payload_truncated: bool = Field(False, alias="payloadTruncated")

    def to_json(self) -> bytes:
        """The message value for the DLQ topic."""
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))


def payload_text(raw: bytes | None) -> tuple[str, bool]:
    """The payload as text for the dead letter, and whether it was cut."""
    if raw is None:
        return "", False
    text = raw[: PAYLOAD_LIMIT * 4].decode("utf-8", errors="replace")
    if len(text) > PAYLOAD_LIMIT or len(raw) > PAYLOAD_LIMIT * 4:
        return text[:PAYLOAD_LIMIT], True
    return text, False
