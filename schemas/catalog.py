"""Wire format of the compacted topic ``course-catalog`` (docs/api.md § Learning events).

Key = ``courseId``; a later message for a course replaces the earlier one; a
message with no value (a tombstone) removes the course from the catalog.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import InvalidMessage, first_error

TOPIC = "course-catalog"


class CourseCatalogEntry(BaseModel):
    """One course of the catalog."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    course_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(alias="courseId")
    title: Annotated[str, Field(max_length=512)]
    total_lessons: Annotated[int, Field(strict=True, ge=0, le=100_000)] = Field(
        alias="totalLessons"
    )


def parse_catalog(raw: bytes | str, max_bytes: int = 65536) -> CourseCatalogEntry:
    """Validate one catalog message; raise ``InvalidMessage`` if it is bad."""
    if len(raw) > max_bytes:
        raise InvalidMessage(f"message is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        return CourseCatalogEntry.model_validate_json(raw, by_name=False)
    except ValidationError as exc:
        raise first_error(exc) from None
