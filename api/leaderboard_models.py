"""The wire format of the leaderboard endpoints (docs/api.md § Leaderboards).

Answers are written by ``api.ranking.answer_body`` as plain JSON; these models
document them in the OpenAPI schema and validate the ``PUT`` body. A chosen
name is 1-40 characters once surrounding spaces are trimmed, with no control
characters: no C0/C1 controls, line or paragraph separators, bidirectional
overrides or unassigned and private-use code points (letters, marks, emoji and
their zero-width joiners are fine).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool
from pydantic.alias_generators import to_camel

from api.models import ApiModel

MAX_NAME = 40
# Bidirectional formatting: they can make a name read as another (U+202E reverses text).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = frozenset(("Cc", "Cs", "Co", "Cn", "Zl", "Zp"))


def has_control(text: str) -> bool:
    """True when ``text`` holds a character a displayed name must not (see the module)."""
    return any(ch in _BIDI or unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text)


def check_name(value: str) -> str:
    """The name trimmed, if it is 1-40 characters without control characters."""
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"must be 1-{MAX_NAME} characters (surrounding spaces not counted)")
    if has_control(name):
        raise ValueError("must not contain control characters")
    return name


class LeaderboardEntry(ApiModel):
    """One ranked learner."""

    rank: int = Field(description="competition rank: 1, 2, 2, 4")
    name: str = Field(description="the name the learner shows, else 'Learner <rank>'")
    points: int
    is_me: bool
    student_id: str | None = Field(
        None, description="present only for admins, and on the requester's own row"
    )


class LeaderboardMe(ApiModel):
    """The requester's place."""

    rank: int | None
    points: int
    percentile: float = Field(description="share of ranked learners with fewer points, %")


class Leaderboard(ApiModel):
    """``GET /api/leaderboard``."""

    period: Literal["week", "month", "all"]
    course_id: str | None
    from_: dt.date | None = Field(alias="from")
    to: dt.date
    ranked: int
    entries: list[LeaderboardEntry]
    me: LeaderboardMe


class LeaderboardSetting(ApiModel):
    """A learner's leaderboard setting, as stored."""

    visible: bool
    name: str | None


class LeaderboardSettingRequest(BaseModel):
    """Body of ``PUT /api/leaderboard/me``: ``name`` absent keeps the stored one, ``null``
    removes it (only while not visible)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=False, extra="ignore", frozen=True
    )

    visible: StrictBool
    name: Annotated[str, Field(max_length=4 * MAX_NAME), AfterValidator(check_name)] | None = None
