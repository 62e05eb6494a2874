"""xAPI 1.0.3 statements -> learning events of docs/api.md: the pure translator of docs/ingest.md.

``translate_all(body, now=...)`` takes what a Learning Record Store receives (one
statement or an array of them, already decoded from JSON) and returns one
``Translation`` per statement, in order: its id (the statement's own, or a new
uuid4 when it has none) and the event it stands for, or ``None`` when the
statement is accepted but not counted (video, forum, navigation, grades,
attempts without a score: anything the table of docs/ingest.md does not name).

Which statements count (docs/ingest.md has the table with the fixtures):

- verb ``registered`` / ``unregistered`` with a course object -> ``enrolled`` / ``unenrolled``;
- verb ``progressed`` or ``completed`` with ``result.completion: true``, object
  not a course -> ``lesson_progress`` (``completed: true``, ``lessonId`` = object id);
- verb ``evaluated`` with ``result.score.scaled`` -> ``quiz_completed``
  (``quizId`` = object id, ``score`` = 100 x scaled, not rounded, clamped to 0-100).

``studentId`` is ``actor.account.name``, else ``mbox``, ``mbox_sha1sum`` or
``openid``; ``courseId`` the Open edX course key (``course-v1:…``, or a CCX's
``ccx-v1:…``) of a course object, of the first course activity in
``context.contextActivities.parent`` then ``grouping``, or of the object's
``block-v1:`` usage key; ``occurredAt`` the ``timestamp`` (UTC when it has no
offset; ``now`` when the statement has none, as an LRS stores it);
``timeSpent`` the ISO 8601 ``result.duration`` in minutes (at most 1,440).

Failure rule: every field the translator reads is type-checked on every
statement, counted or not; a statement that must be counted also needs a
learner, a course and (lessons, quizzes) an object id. Problems are collected
for all statements and raised together as ``InvalidStatements``, each naming
the statement's index and field; nothing else is raised for bad input. The
events are not checked against the event rules here (lengths, the future limit): the caller
runs them through ``schemas.events.parse_event``, the worker's own parser, and
names the statement field with ``Translation.source_of``. No I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.events import RFC3339_START

VERB_REGISTERED = "http://adlnet.gov/expapi/verbs/registered"
VERB_UNREGISTERED = "http://id.tincanapi.com/verb/unregistered"
VERB_PROGRESSED = "http://adlnet.gov/expapi/verbs/progressed"
VERB_COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
VERB_EVALUATED = "https://w3id.org/xapi/acrossx/verbs/evaluated"
COURSE_ACTIVITY = "http://adlnet.gov/expapi/activities/course"
LEARNER_IDS = ("mbox", "mbox_sha1sum", "openid")  # after account.name, in this order
MAX_MINUTES = 1440.0  # docs/api.md: timeSpent is 0-1440; a longer duration counts as a day

# An Open edX course key inside an activity id (``http://lms/course/course-v1:O+C+R``).
COURSE_KEY = re.compile(r"(?<![\w-])(?:course-v1|ccx-v1):[^/?#\s]+")
# A block's usage key: ``block-v1:O+C+R+type@…`` or a CCX's ``ccx-block-v1:O+C+R+ccx@N+type@…``.
BLOCK_KEY = re.compile(
    r"(?<![\w-])(?P<kind>ccx-block-v1|block-v1):(?P<course>[^/?#\s]+?)\+type@", re.ASCII
)
_NUMBER = r"(\d+(?:[.,]\d+)?)"
DURATION = re.compile(
    rf"P(?!$)(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?",
    re.ASCII,
)
# Minutes per duration part: years and months as 365 and 30 days (any of them is
# over the 1,440-minute cap anyway).
DURATION_MINUTES = (525_600.0, 43_200.0, 10_080.0, 1_440.0, 60.0, 1.0, 1 / 60)
# Where each event field comes from, to name the statement field when the event is refused.
SOURCES = {
    "eventId": "id", "occurredAt": "timestamp", "lessonId": "object.id", "quizId": "object.id",
    "score": "result.score.scaled", "timeSpent": "result.duration", "type": "verb.id",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a statement is not acceptable: its index (None: the body), field and message."""

    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidStatements(ValueError):
    """The body is not a statement or an array of statements; ``problems`` says where."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"[{p.index}] {p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Translation:
    """One statement's id, verb and event (None: accepted, not counted)."""

    statement_id: str
    verb: str
    event: dict[str, Any] | None
    student_source: str = "actor"
    course_source: str = "object.id"

    def source_of(self, event_field: str | None) -> str:
        """The statement field an event field was made from (``statement`` when unknown)."""
        if event_field == "studentId":
            return self.student_source
        if event_field == "courseId":
            return self.course_source
        return SOURCES.get(event_field or "", "statement")


class _Bad(Exception):
    """One problem in one statement (collected by ``translate_all``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def new_statement_id() -> str:
    """The id an LRS gives a statement that came without one."""
    return str(uuid.uuid4())


def translate_all(
    body: object, *, now: dt.datetime, new_id: Callable[[], str] = new_statement_id
) -> list[Translation]:
    """Every statement of ``body`` (one object or an array), translated in order."""
    if isinstance(body, dict):
        statements: list[Any] = [body]
    elif isinstance(body, list):
        statements = body
    else:
        raise InvalidStatements([Problem(None, "body", "must be a statement or an array of them")])
    translations: list[Translation] = []
    problems: list[Problem] = []
    for index, statement in enumerate(statements):
        try:
            translations.append(translate(statement, now=now, new_id=new_id))
        except _Bad as bad:
            problems.append(Problem(index, bad.field, bad.message))
    if problems:
        raise InvalidStatements(problems)
    return translations


def translate(
    statement: object, *, now: dt.datetime, new_id: Callable[[], str] = new_statement_id
) -> Translation:
    """One statement's translation; raises ``_Bad`` naming the field of its first problem."""
    if not isinstance(statement, dict):
        raise _Bad("statement", "must be a JSON object")
    statement_id = _string(statement, "id", "id", required=False)
    actor = _object(statement, "actor", "actor")
    verb_id = _string(_object(statement, "verb", "verb"), "id", "verb.id")
    target = _object(statement, "object", "object")
    object_id = _string(target, "id", "object.id", required=False)
    definition = _object(target, "definition", "object.definition", required=False)
    object_type = _string(definition, "type", "object.definition.type", required=False)
    result = _object(statement, "result", "result", required=False)
    completion = _boolean(result, "completion", "result.completion")
    score = _object(result, "score", "result.score", required=False)
    scaled = _number(score, "scaled", "result.score.scaled")
    minutes = _duration(_string(result, "duration", "result.duration", required=False))
    activities = _context_activities(statement)
    occurred = _timestamp(_string(statement, "timestamp", "timestamp", required=False), now)

    is_course = object_type == COURSE_ACTIVITY
    kind = _event_type(verb_id, is_course, completion, scaled)
    statement_id = statement_id if statement_id is not None else new_id()
    if kind is None:
        return Translation(statement_id, verb_id, None)
    student, student_source = _learner(actor)
    course, course_source = _course(object_id, is_course, activities)
    event: dict[str, Any] = {
        "eventId": statement_id, "type": kind, "studentId": student, "courseId": course,
        "occurredAt": occurred,
    }  # fmt: skip
    if kind == "lesson_progress":
        event["lessonId"] = _counted_object_id(object_id, "lessonId")
        event["completed"] = True
    elif kind == "quiz_completed":
        assert scaled is not None
        event["quizId"] = _counted_object_id(object_id, "quizId")
        event["score"] = min(100.0, max(0.0, 100 * scaled))
    if minutes is not None:
        event["timeSpent"] = minutes
    return Translation(statement_id, verb_id, event, student_source, course_source)


def _event_type(
    verb_id: str, is_course: bool, completion: bool | None, scaled: float | None
) -> str | None:
    """The event type a statement counts as (docs/ingest.md), None when it does not count."""
    if verb_id == VERB_REGISTERED and is_course:
        return "enrolled"
    if verb_id == VERB_UNREGISTERED and is_course:
        return "unenrolled"
    if verb_id in (VERB_PROGRESSED, VERB_COMPLETED) and completion is True and not is_course:
        return "lesson_progress"
    if verb_id == VERB_EVALUATED and scaled is not None:
        return "quiz_completed"
    return None


# ------------------------------------------------------------ identifiers
def _learner(actor: dict[str, Any]) -> tuple[str, str]:
    """The studentId and the field it came from; ``_Bad`` when the actor names nobody."""
    account = _object(actor, "account", "actor.account", required=False)
    name = _string(account, "name", "actor.account.name", required=False)
    if name:
        return name, "actor.account.name"
    for key in LEARNER_IDS:
        value = _string(actor, key, f"actor.{key}", required=False)
        if value:
            return value, f"actor.{key}"
    raise _Bad("actor", "names no learner: account.name, mbox, mbox_sha1sum or openid is required")


def _course(
    object_id: str | None, is_course: bool, activities: dict[str, list[dict[str, Any]]]
) -> tuple[str, str]:
    """The course key and the field it came from (docs/ingest.md's order); ``_Bad`` when none."""
    if is_course and object_id:
        return _course_key(object_id), "object.id"
    for group in ("parent", "grouping"):
        for position, activity in enumerate(activities.get(group, ())):
            field = f"context.contextActivities.{group}.{position}"
            definition = _object(activity, "definition", f"{field}.definition", required=False)
            kind = _string(definition, "type", f"{field}.definition.type", required=False)
            activity_id = _string(activity, "id", f"{field}.id", required=False)
            if kind == COURSE_ACTIVITY and activity_id:
                return _course_key(activity_id), f"{field}.id"
    block = BLOCK_KEY.search(object_id or "")
    if block is not None:
        prefix = "ccx-v1" if block["kind"] == "ccx-block-v1" else "course-v1"
        return f"{prefix}:{block['course']}", "object.id"
    raise _Bad(
        "context.contextActivities",
        "no course: the object is not a course, no course activity is in "
        "context.contextActivities.parent or grouping, and the object id has no block-v1 key",
    )


def _course_key(activity_id: str) -> str:
    """The Open edX course key in a course activity's id, else the id itself (other LMSs)."""
    found = COURSE_KEY.search(activity_id)
    return found.group(0) if found is not None else activity_id


def _counted_object_id(object_id: str | None, event_field: str) -> str:
    if not object_id:
        raise _Bad("object.id", f"is required to count this statement (it is the {event_field})")
    return object_id


def _context_activities(statement: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``context.contextActivities.parent`` and ``grouping`` as lists of objects."""
    context = _object(statement, "context", "context", required=False)
    activities = _object(context, "contextActivities", "context.contextActivities", required=False)
    found: dict[str, list[dict[str, Any]]] = {}
    for group in ("parent", "grouping"):
        value = activities.get(group)
        field = f"context.contextActivities.{group}"
        if value is None and group not in activities:
            continue
        items = [value] if isinstance(value, dict) else value  # xAPI allows one object
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _Bad(field, "must be an activity object or an array of them")
        found[group] = items
    return found


# ------------------------------------------------------------------ values
def _timestamp(text: str | None, now: dt.datetime) -> str:
    """RFC 3339 text of the statement's time (UTC without an offset; ``now`` when absent)."""
    if text is None:
        moment = now
    else:
        try:
            if not RFC3339_START.match(text):
                raise ValueError("not RFC 3339")
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _Bad(
                "timestamp", "must be an ISO 8601 timestamp, e.g. 2026-11-26T09:00:00Z"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def _duration(text: str | None) -> float | None:
    """Minutes of an ISO 8601 duration (``PT3M15S`` -> 3.25), capped at 1,440."""
    if text is None:
        return None
    match = DURATION.fullmatch(text)
    if match is None:
        raise _Bad("result.duration", "must be an ISO 8601 duration, e.g. PT3M15S")
    minutes = sum(
        float(part.replace(",", ".")) * scale
        for part, scale in zip(match.groups(), DURATION_MINUTES, strict=True)
        if part is not None
    )
    return min(MAX_MINUTES, minutes)


def _object(
    parent: dict[str, Any], key: str, field: str, *, required: bool = True
) -> dict[str, Any]:
    """``parent[key]`` as an object (``{}`` when optional and absent)."""
    value = parent.get(key)
    if isinstance(value, dict):
        return value
    if value is None and key not in parent:
        if required:
            raise _Bad(field, "is required")
        return {}
    raise _Bad(field, f"must be a JSON object, not {_kind(value)}")


def _string(parent: dict[str, Any], key: str, field: str, *, required: bool = True) -> Any:
    """``parent[key]`` as a non-empty string (None when optional and absent)."""
    value = parent.get(key)
    if isinstance(value, str) and value:
        return value
    if value is None and key not in parent:
        if required:
            raise _Bad(field, "is required")
        return None
    raise _Bad(field, f"must be a non-empty string, not {_kind(value)}")


def _boolean(parent: dict[str, Any], key: str, field: str) -> bool | None:
    value = parent.get(key)
    if value is None and key not in parent:
        return None
    if isinstance(value, bool):
        return value
    raise _Bad(field, f"must be true or false, not {_kind(value)}")


def _number(parent: dict[str, Any], key: str, field: str) -> float | None:
    value = parent.get(key)
    if value is None and key not in parent:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _Bad(field, f"must be a number, not {_kind(value)}")


def _kind(value: object) -> str:
    """A JSON name for the type of a decoded value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number" if math.isfinite(value) else "an infinite number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return "an array" if isinstance(value, list) else "an object"
