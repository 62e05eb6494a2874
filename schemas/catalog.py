"""Wire format of the compacted topic ``course-catalog`` (docs/api.md § Course catalog).

Key = ``courseId``; a later message for a course replaces the earlier one; a
message with no value (a tombstone) removes the course from the catalog.

``lessons`` (optional) lists the course's lesson ids. When an entry lists them,
only completions of listed lessons count (docs/api.md § What a student can and
cannot claim); without it (absent or null) any lesson id counts. An empty list
is a list: no lesson of the course counts. Ids are 1-128 characters without
control characters, like every id of the events; a repeated id is kept once.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import InvalidMessage, first_error
from schemas.events import CONTROL_CHARACTERS, CONTROL_MESSAGE

TOPIC = "course-catalog"
# A catalog message may list up to MAX_LESSONS lessons, so it may be larger than an
# event: 1 MiB holds ~30,000 ids of 30 characters (the broker's default message limit).
MAX_CATALOG_BYTES = 1_048_576
MAX_LESSONS = 100_000


def _no_control_characters(value: str) -> str:
    if CONTROL_CHARACTERS.search(value) is not None:
        raise ValueError(CONTROL_MESSAGE)
    return value


CatalogId = Annotated[
    str, Field(min_length=1, max_length=128), AfterValidator(_no_control_characters)
]


def _unique(lessons: list[str] | None) -> tuple[str, ...] | None:
    """The listed lessons in their first order, each once."""
    return None if lessons is None else tuple(dict.fromkeys(lessons))


class CourseCatalogEntry(BaseModel):
    """One course of the catalog."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    course_id: CatalogId = Field(alias="courseId")
    title: Annotated[str, Field(max_length=512)]
    total_lessons: Annotated[int, Field(strict=True, ge=0, le=100_000)] = Field(
        alias="totalLessons"
    )
    lessons: Annotated[
        list[CatalogId] | None, Field(max_length=MAX_LESSONS), AfterValidator(_unique)
    ] = None


def parse_catalog(raw: bytes | str, max_bytes: int = MAX_CATALOG_BYTES) -> CourseCatalogEntry:
    """Validate one catalog message; raise ``InvalidMessage`` if it is bad."""
    if len(raw) > max_bytes:
        raise InvalidMessage(f"message is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        return CourseCatalogEntry.model_validate_json(raw, by_name=False)
    except ValidationError as exc:
        raise first_error(exc) from None
