"""Unit tests of the wire format of ``learning-events`` and of local days (docs/api.md).

``parse_event`` must accept every valid event with the derived values (epoch ms,
learner-local date, zone label) and reject every message that breaks the table of
the contract with an ``InvalidMessage`` naming the field and saying why. The example
payloads of ``schemas.examples`` are run through the parsers and the processor.
Every expected value here is worked out by hand from the contract (docs/api.md), never copied from
the implementation; the clock is fixed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from schemas.catalog import parse_catalog
from schemas.errors import InvalidMessage
from schemas.events import ParsedEvent, offset_label, parse_event, zone_of_label
from schemas.examples import CATALOG_ENTRIES, EXAMPLES_NOW, INVALID_EVENTS, VALID_EVENTS
from streams.known_students import KnownStudents
from streams.processor import EventProcessor, Message
from streams.student_state import StudentState

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
MAX_FUTURE = dt.timedelta(hours=24)
DROP = object()  # marks a field to remove from the base payload

LESSON: dict[str, Any] = {
    "eventId": "e-1",
    "type": "lesson_progress",
    "studentId": "s-1",
    "courseId": "c-1",
    "lessonId": "l-1",
    "completed": True,
    "occurredAt": "2026-11-25T10:00:00+01:00",
}
QUIZ: dict[str, Any] = {
    "eventId": "e-2",
    "type": "quiz_completed",
    "studentId": "s-1",
    "courseId": "c-1",
    "quizId": "q-1",
    "score": 85,
    "occurredAt": "2026-11-25T10:00:00+01:00",
}
ENROLLED: dict[str, Any] = {
    "eventId": "e-3",
    "type": "enrolled",
    "studentId": "s-1",
    "courseId": "c-1",
    "occurredAt": "2026-11-25T10:00:00+01:00",
}


def utc_ms(*parts: int) -> int:
    """Epoch milliseconds of a UTC wall-clock time (computed without the parser)."""
    moment = dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with fields replaced (or removed with ``DROP``)."""
    result = dict(base)
    for key, value in changes.items():
        if value is DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def parse(payload: Any, **kwargs: Any) -> ParsedEvent:
    raw = payload if payload is None or isinstance(payload, bytes | str) else orjson.dumps(payload)
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("max_future", MAX_FUTURE)
    return parse_event(raw, **kwargs)


def reject(payload: Any, **kwargs: Any) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        parse(payload, **kwargs)
    assert info.value.reason, "a rejection must say why"
    return info.value


# --------------------------------------------------------------------------- valid


def test_valid_lesson_progress() -> None:
    parsed = parse(with_changes(LESSON, moduleId="m-1", timeSpent=12.5, progress=40))
    event = parsed.event
    assert (event.event_id, event.type, event.student_id, event.course_id) == (
        "e-1", "lesson_progress", "s-1", "c-1",
    )  # fmt: skip
    assert (event.module_id, event.lesson_id, event.completed) == ("m-1", "l-1", True)
    assert event.time_spent == 12.5
    assert event.progress == 40.0
    assert event.quiz_id is None and event.score is None
    assert parsed.occurred_ms == utc_ms(2026, 11, 25, 9, 0)
    assert parsed.local_date == dt.date(2026, 11, 25)
    assert parsed.zone_label == "+01:00"
    assert parsed.event_id == "e-1" and parsed.student_id == "s-1"


def test_valid_lesson_progress_not_completed_defaults_time_to_zero() -> None:
    parsed = parse(with_changes(LESSON, completed=False))
    assert parsed.event.completed is False
    assert parsed.event.time_spent == 0.0
    assert parsed.event.progress is None


def test_valid_quiz_completed() -> None:
    parsed = parse(with_changes(QUIZ, timeSpent=3, score=85.5))
    assert parsed.event.type == "quiz_completed"
    assert (parsed.event.quiz_id, parsed.event.score, parsed.event.time_spent) == ("q-1", 85.5, 3.0)
    assert parsed.event.lesson_id is None and parsed.event.completed is None


def test_valid_quiz_completed_integer_score() -> None:
    assert parse(QUIZ).event.score == 85.0


@pytest.mark.parametrize("kind", ["enrolled", "unenrolled"])
def test_valid_enrollment_events(kind: str) -> None:
    parsed = parse(with_changes(ENROLLED, type=kind))
    assert parsed.event.type == kind
    assert parsed.event.lesson_id is None and parsed.event.quiz_id is None
    assert parsed.occurred_ms == utc_ms(2026, 11, 25, 9, 0)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"timeSpent": 0}, id="timeSpent-0"),
        pytest.param({"timeSpent": 1440}, id="timeSpent-1440"),
        pytest.param({"progress": 0}, id="progress-0"),
        pytest.param({"progress": 100}, id="progress-100"),
        pytest.param({"eventId": "x" * 128}, id="eventId-128-chars"),
        pytest.param({"studentId": "s" * 128}, id="studentId-128-chars"),
        pytest.param({"courseId": "c" * 128}, id="courseId-128-chars"),
        pytest.param({"lessonId": "l" * 128}, id="lessonId-128-chars"),
        pytest.param({"moduleId": "m" * 128}, id="moduleId-128-chars"),
        pytest.param({"eventId": "é" * 128}, id="eventId-128-non-ascii-chars"),
        pytest.param({"occurredAt": "2026-11-25T09:00:00.123Z"}, id="milliseconds-Z"),
        pytest.param({"occurredAt": "2026-11-25t09:00:00z"}, id="lowercase-t-z"),
        pytest.param({"progress": None, "moduleId": None}, id="optional-null"),
    ],
)
def test_valid_boundaries_accepted(changes: dict[str, Any]) -> None:
    parse(with_changes(LESSON, **changes))


@pytest.mark.parametrize("score", [0, 100, 0.0, 99.99])
def test_valid_score_boundaries(score: float) -> None:
    assert parse(with_changes(QUIZ, score=score)).event.score == score


def test_milliseconds_kept() -> None:
    parsed = parse(with_changes(LESSON, occurredAt="2026-11-25T09:00:00.123Z"))
    assert parsed.occurred_ms == utc_ms(2026, 11, 25, 9, 0) + 123


def test_extra_unknown_fields_ignored() -> None:
    parsed = parse(
        with_changes(LESSON, foo="bar", nested={"a": [1, 2, {"b": None}]}, score_extra=1, xp=5)
    )
    assert parsed.event == parse(LESSON).event


def test_str_input_accepted() -> None:
    assert parse(orjson.dumps(LESSON).decode()).event == parse(LESSON).event


# ----------------------------------------------------------------------- rejected

REJECTIONS = [
    # name, raw payload (dict -> JSON), expected field, fragment of the reason
    ("not-json", b"this is not json", None, "not valid JSON"),
    ("truncated-json", orjson.dumps(LESSON)[:-1], None, "not valid JSON"),
    ("empty-bytes", b"", None, "not valid JSON"),
    ("invalid-utf8", b'{"eventId": "\xff\xfe"}', None, "JSON"),
    ("json-array", orjson.dumps([LESSON]), None, "not a JSON object"),
    ("json-number", b"42", None, "not a JSON object"),
    ("json-string", b'"lesson_progress"', None, "not a JSON object"),
    ("json-null", b"null", None, "not a JSON object"),
    ("missing-eventId", with_changes(LESSON, eventId=DROP), "eventId", "required"),
    ("missing-type", with_changes(LESSON, type=DROP), "type", "required"),
    ("missing-studentId", with_changes(LESSON, studentId=DROP), "studentId", "required"),
    ("missing-courseId", with_changes(LESSON, courseId=DROP), "courseId", "required"),
    ("missing-occurredAt", with_changes(LESSON, occurredAt=DROP), "occurredAt", "required"),
    ("empty-eventId", with_changes(LESSON, eventId=""), "eventId", "at least 1"),
    ("empty-type", with_changes(LESSON, type=""), "type", "lesson_progress"),
    ("empty-studentId", with_changes(LESSON, studentId=""), "studentId", "at least 1"),
    ("empty-courseId", with_changes(LESSON, courseId=""), "courseId", "at least 1"),
    ("empty-occurredAt", with_changes(LESSON, occurredAt=""), "occurredAt", "RFC 3339"),
    ("null-eventId", with_changes(LESSON, eventId=None), "eventId", "string"),
    ("numeric-eventId", with_changes(LESSON, eventId=17), "eventId", "string"),
    ("snake-case-event_id", with_changes(LESSON, eventId=DROP, event_id="e-1"), "eventId",
     "required"),
    ("timeSpent-string", with_changes(LESSON, timeSpent="5"), "timeSpent", "number"),
    ("timeSpent-null", with_changes(LESSON, timeSpent=None), "timeSpent", "number"),
    ("timeSpent-bool", with_changes(LESSON, timeSpent=True), "timeSpent", "number"),
    ("completed-yes", with_changes(LESSON, completed="yes"), "completed", "boolean"),
    ("completed-1", with_changes(LESSON, completed=1), "completed", "boolean"),
    ("score-true", with_changes(QUIZ, score=True), "score", "number"),
    ("score-string", with_changes(QUIZ, score="85"), "score", "number"),
    ("progress-string", with_changes(LESSON, progress="50"), "progress", "number"),
    ("unknown-type", with_changes(LESSON, type="lesson_started"), "type", "lesson_progress"),
    ("timeSpent-negative", with_changes(LESSON, timeSpent=-1), "timeSpent", "greater than"),
    ("timeSpent-tiny-negative", with_changes(LESSON, timeSpent=-0.001), "timeSpent",
     "greater than"),
    ("timeSpent-over-1440", with_changes(LESSON, timeSpent=1441), "timeSpent", "less than"),
    ("timeSpent-1440.5", with_changes(LESSON, timeSpent=1440.5), "timeSpent", "less than"),
    ("score-negative", with_changes(QUIZ, score=-0.5), "score", "greater than"),
    ("score-over-100", with_changes(QUIZ, score=100.01), "score", "less than"),
    ("progress-negative", with_changes(LESSON, progress=-1), "progress", "greater than"),
    ("progress-over-100", with_changes(LESSON, progress=101), "progress", "less than"),
    ("occurredAt-no-offset", with_changes(LESSON, occurredAt="2026-11-25T10:00:00"),
     "occurredAt", "timezone"),
    ("occurredAt-date-only", with_changes(LESSON, occurredAt="2026-11-25"), "occurredAt",
     "RFC 3339"),
    ("occurredAt-unparseable", with_changes(LESSON, occurredAt="yesterday at noon"),
     "occurredAt", "RFC 3339"),
    ("occurredAt-impossible-date", with_changes(LESSON, occurredAt="2026-02-30T10:00:00Z"),
     "occurredAt", "datetime"),
    ("occurredAt-unix-number", with_changes(LESSON, occurredAt=1795597200), "occurredAt",
     "RFC 3339"),
    ("occurredAt-unix-millis", with_changes(LESSON, occurredAt=1795597200000), "occurredAt",
     "RFC 3339"),
    ("occurredAt-unix-float", with_changes(LESSON, occurredAt=1795597200.5), "occurredAt",
     "RFC 3339"),
    ("occurredAt-unix-string", with_changes(LESSON, occurredAt="1795597200"), "occurredAt",
     "RFC 3339"),
    ("occurredAt-bool", with_changes(LESSON, occurredAt=True), "occurredAt", "RFC 3339"),
    ("occurredAt-object", with_changes(LESSON, occurredAt={"seconds": 1}), "occurredAt",
     "datetime"),
    ("occurredAt-future", with_changes(LESSON, occurredAt="2026-11-27T09:00:01Z"), "occurredAt",
     "future"),
    ("occurredAt-far-future", with_changes(LESSON, occurredAt="2036-01-01T00:00:00+01:00"),
     "occurredAt", "future"),
    ("unknown-timezone", with_changes(LESSON, timezone="Europe/Atlantis"), "timezone",
     "not a known IANA"),
    ("timezone-path-traversal", with_changes(LESSON, timezone="../../etc/passwd"), "timezone",
     "not a known IANA"),
    ("timezone-empty", with_changes(LESSON, timezone=""), "timezone", "at least 1"),
    ("timezone-number", with_changes(LESSON, timezone=1), "timezone", "string"),
    ("eventId-129-chars", with_changes(LESSON, eventId="x" * 129), "eventId", "at most 128"),
    ("studentId-129-chars", with_changes(LESSON, studentId="s" * 129), "studentId",
     "at most 128"),
    ("courseId-129-chars", with_changes(LESSON, courseId="c" * 129), "courseId", "at most 128"),
    ("lessonId-129-chars", with_changes(LESSON, lessonId="l" * 129), "lessonId", "at most 128"),
    ("moduleId-129-chars", with_changes(LESSON, moduleId="m" * 129), "moduleId", "at most 128"),
    ("quizId-129-chars", with_changes(QUIZ, quizId="q" * 129), "quizId", "at most 128"),
    ("lesson-without-lessonId", with_changes(LESSON, lessonId=DROP), "lessonId", "required"),
    ("lesson-with-null-lessonId", with_changes(LESSON, lessonId=None), "lessonId", "required"),
    ("lesson-without-completed", with_changes(LESSON, completed=DROP), "completed", "required"),
    ("lesson-with-null-completed", with_changes(LESSON, completed=None), "completed",
     "required"),
    ("quiz-without-quizId", with_changes(QUIZ, quizId=DROP), "quizId", "required"),
    ("quiz-without-score", with_changes(QUIZ, score=DROP), "score", "required"),
    ("quiz-with-lesson-fields-only", with_changes(QUIZ, quizId=DROP, score=DROP, lessonId="l",
     completed=True), "quizId", "required"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [pytest.param(p, f, r, id=name) for name, p, f, r in REJECTIONS],
)
def test_rejected(payload: Any, field: str | None, fragment: str) -> None:
    error = reject(payload)
    assert error.field == field, error.reason
    assert fragment in error.reason
    if field is not None:
        assert field in error.reason, "the reason names the field"


def test_reject_no_value() -> None:
    error = reject(None)
    assert error.field is None
    assert "empty" in error.reason


def test_reject_one_megabyte_message() -> None:
    raw = orjson.dumps(with_changes(LESSON, padding="x" * (1 << 20)))
    error = reject(raw)
    assert error.field is None
    assert str(len(raw)) in error.reason and "65536" in error.reason


def test_max_bytes_boundary() -> None:
    raw = orjson.dumps(LESSON)
    parse(raw, max_bytes=len(raw))
    error = reject(raw, max_bytes=len(raw) - 1)
    assert "over the limit" in error.reason


def test_future_boundary_is_max_future() -> None:
    parse(with_changes(LESSON, occurredAt="2026-11-27T09:00:00Z"))  # exactly now + 24 h
    parse(with_changes(LESSON, occurredAt="2026-11-27T10:00:00+01:00"))  # same instant
    reject(with_changes(LESSON, occurredAt="2026-11-27T09:00:00.001Z"))
    # a tighter max_future moves the boundary
    reject(with_changes(LESSON, occurredAt="2026-11-26T09:00:01Z"), max_future=dt.timedelta(0))
    parse(with_changes(LESSON, occurredAt="2026-11-26T09:00:00Z"), max_future=dt.timedelta(0))


def test_old_events_are_accepted() -> None:
    parsed = parse(with_changes(LESSON, occurredAt="2019-01-01T00:00:00Z"))
    assert parsed.local_date == dt.date(2019, 1, 1)


def test_first_problem_wins_but_names_one_field() -> None:
    error = reject(with_changes(LESSON, eventId="", timeSpent=-5))
    assert error.field in {"eventId", "timeSpent"}


# ------------------------------------------------------------------ local days


@pytest.mark.parametrize(
    ("occurred_at", "timezone", "local_date", "label"),
    [
        # timezone wins over the offset of occurredAt
        pytest.param("2026-03-29T00:30:00+01:00", "America/New_York", "2026-03-28",
                     "America/New_York", id="timezone-wins-earlier-date"),
        pytest.param("2026-06-15T20:00:00-04:00", "Asia/Tokyo", "2026-06-16", "Asia/Tokyo",
                     id="timezone-wins-later-date"),
        # no timezone: the date in the offset of occurredAt
        pytest.param("2026-06-15T23:30:00-03:00", None, "2026-06-15", "-03:00",
                     id="offset-date-negative"),
        pytest.param("2026-06-15T00:10:00+05:30", None, "2026-06-15", "+05:30",
                     id="offset-date-half-hour"),
        pytest.param("2026-06-15T23:30:00Z", None, "2026-06-15", "+00:00", id="offset-Z"),
        pytest.param("2026-06-15T23:30:00+00:00", None, "2026-06-15", "+00:00",
                     id="offset-plus-zero"),
        pytest.param("2026-06-15T23:30:00-00:00", None, "2026-06-15", "+00:00",
                     id="offset-minus-zero"),
        pytest.param("2026-06-15T00:30:00+14:00", None, "2026-06-15", "+14:00",
                     id="offset-plus-14"),
        pytest.param("2026-06-15T23:30:00-09:30", None, "2026-06-15", "-09:30",
                     id="offset-minus-0930"),
        # one instant, different days in different zones
        pytest.param("2026-06-15T23:30:00Z", "Asia/Tokyo", "2026-06-16", "Asia/Tokyo",
                     id="23:30Z-next-day-in-Tokyo"),
        pytest.param("2026-06-15T23:30:00Z", "America/Los_Angeles", "2026-06-15",
                     "America/Los_Angeles", id="23:30Z-same-day-in-Los-Angeles"),
        pytest.param("2026-06-16T03:30:00Z", "America/Los_Angeles", "2026-06-15",
                     "America/Los_Angeles", id="03:30Z-previous-day-in-Los-Angeles"),
        pytest.param("2026-06-15T23:30:00Z", "UTC", "2026-06-15", "UTC", id="UTC-zone"),
        # Europe/Paris, spring forward on 2026-03-29 at 01:00Z (+01:00 -> +02:00)
        pytest.param("2026-03-28T22:30:00Z", "Europe/Paris", "2026-03-28", "Europe/Paris",
                     id="paris-before-spring-forward"),
        pytest.param("2026-03-28T23:30:00Z", "Europe/Paris", "2026-03-29", "Europe/Paris",
                     id="paris-spring-forward-day-start"),
        pytest.param("2026-03-29T22:30:00Z", "Europe/Paris", "2026-03-30", "Europe/Paris",
                     id="paris-after-spring-forward"),
        # Europe/Paris, fall back on 2026-10-25 at 01:00Z (+02:00 -> +01:00)
        pytest.param("2026-10-24T22:30:00Z", "Europe/Paris", "2026-10-25", "Europe/Paris",
                     id="paris-before-fall-back"),
        pytest.param("2026-10-25T22:30:00Z", "Europe/Paris", "2026-10-25", "Europe/Paris",
                     id="paris-after-fall-back"),
        # America/New_York, spring forward on 2026-03-08 at 07:00Z (-05:00 -> -04:00)
        pytest.param("2026-03-08T04:30:00Z", "America/New_York", "2026-03-07",
                     "America/New_York", id="new-york-before-spring-forward"),
        pytest.param("2026-03-09T04:30:00Z", "America/New_York", "2026-03-09",
                     "America/New_York", id="new-york-after-spring-forward"),
        # America/New_York, fall back on 2026-11-01 at 06:00Z (-04:00 -> -05:00)
        pytest.param("2026-11-01T04:30:00Z", "America/New_York", "2026-11-01",
                     "America/New_York", id="new-york-before-fall-back"),
        pytest.param("2026-11-02T04:30:00Z", "America/New_York", "2026-11-01",
                     "America/New_York", id="new-york-after-fall-back"),
    ],
)  # fmt: skip
def test_local_date(occurred_at: str, timezone: str | None, local_date: str, label: str) -> None:
    payload = with_changes(LESSON, occurredAt=occurred_at)
    if timezone is not None:
        payload["timezone"] = timezone
    parsed = parse(payload)
    assert parsed.local_date == dt.date.fromisoformat(local_date)
    assert parsed.zone_label == label


def test_ambiguous_hour_on_fall_back_keeps_both_instants() -> None:
    """01:30 happens twice in New York on 2026-11-01: the offset tells them apart."""
    first = parse(with_changes(LESSON, occurredAt="2026-11-01T01:30:00-04:00",
                               timezone="America/New_York"))  # fmt: skip
    second = parse(with_changes(LESSON, occurredAt="2026-11-01T01:30:00-05:00",
                                timezone="America/New_York"))  # fmt: skip
    assert second.occurred_ms - first.occurred_ms == 3_600_000
    assert first.occurred_ms == utc_ms(2026, 11, 1, 5, 30)
    assert first.local_date == second.local_date == dt.date(2026, 11, 1)


def test_same_instant_in_any_offset_is_the_same_ms() -> None:
    a = parse(with_changes(LESSON, occurredAt="2026-06-15T23:30:00Z"))
    b = parse(with_changes(LESSON, occurredAt="2026-06-16T05:00:00+05:30"))
    c = parse(with_changes(LESSON, occurredAt="2026-06-15T20:30:00-03:00"))
    assert a.occurred_ms == b.occurred_ms == c.occurred_ms == utc_ms(2026, 6, 15, 23, 30)
    assert (a.local_date, b.local_date, c.local_date) == (
        dt.date(2026, 6, 15), dt.date(2026, 6, 16), dt.date(2026, 6, 15),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("offset", "label"),
    [
        pytest.param(dt.timedelta(hours=5, minutes=30), "+05:30", id="plus-0530"),
        pytest.param(dt.timedelta(hours=-3), "-03:00", id="minus-0300"),
        pytest.param(dt.timedelta(0), "+00:00", id="zero"),
        pytest.param(None, "+00:00", id="none"),
        pytest.param(dt.timedelta(hours=-3, minutes=-30), "-03:30", id="minus-0330"),
        pytest.param(dt.timedelta(hours=-9, minutes=-30), "-09:30", id="minus-0930"),
        pytest.param(dt.timedelta(hours=14), "+14:00", id="plus-1400"),
        pytest.param(dt.timedelta(hours=5, minutes=45), "+05:45", id="plus-0545"),
        pytest.param(dt.timedelta(hours=-12), "-12:00", id="minus-1200"),
    ],
)
def test_offset_label(offset: dt.timedelta | None, label: str) -> None:
    assert offset_label(offset) == label


@pytest.mark.parametrize(
    ("label", "offset"),
    [
        ("+05:30", dt.timedelta(hours=5, minutes=30)),
        ("-03:00", dt.timedelta(hours=-3)),
        ("-03:30", dt.timedelta(hours=-3, minutes=-30)),
        ("+00:00", dt.timedelta(0)),
        ("+14:00", dt.timedelta(hours=14)),
    ],
)
def test_zone_of_offset_label(label: str, offset: dt.timedelta) -> None:
    tz = zone_of_label(label)
    assert tz.utcoffset(NOW) == offset
    assert offset_label(tz.utcoffset(NOW)) == label  # round trip


@pytest.mark.parametrize(
    ("label", "today"),
    [
        # NOW = 2026-11-26T09:00Z
        ("Asia/Tokyo", "2026-11-26"),  # 18:00
        ("Pacific/Kiritimati", "2026-11-26"),  # 23:00 (+14)
        ("Pacific/Pago_Pago", "2026-11-25"),  # 22:00 (-11)
        ("America/Los_Angeles", "2026-11-26"),  # 01:00 (-08)
        ("-10:00", "2026-11-25"),  # 23:00
        ("+15:00", "2026-11-27"),  # 00:00 (label arithmetic only)
    ],
)
def test_zone_of_label_gives_today(label: str, today: str) -> None:
    assert NOW.astimezone(zone_of_label(label)).date() == dt.date.fromisoformat(today)


def test_zone_of_iana_label() -> None:
    tz = zone_of_label("Europe/Paris")
    assert isinstance(tz, ZoneInfo) and tz.key == "Europe/Paris"
    summer = dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
    assert summer.astimezone(tz).utcoffset() == dt.timedelta(hours=2)
    assert NOW.astimezone(tz).utcoffset() == dt.timedelta(hours=1)


@pytest.mark.parametrize("label", ["Europe/Atlantis", "", "+5:30", "garbage"])
def test_zone_of_unknown_label_is_utc(label: str) -> None:
    assert zone_of_label(label).utcoffset(NOW) == dt.timedelta(0)


def test_zone_label_of_parsed_event_gives_its_local_date() -> None:
    """The label saved for "today" reproduces the event's own local date."""
    for occurred_at, timezone in [
        ("2026-06-15T23:30:00Z", "Asia/Tokyo"),
        ("2026-06-15T23:30:00-03:00", None),
        ("2026-03-29T22:30:00Z", "Europe/Paris"),
    ]:
        payload = with_changes(LESSON, occurredAt=occurred_at)
        if timezone:
            payload["timezone"] = timezone
        parsed = parse(payload)
        moment = dt.datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
        assert moment.astimezone(zone_of_label(parsed.zone_label)).date() == parsed.local_date


# ---------------------------------------------------------------------- examples


class EmptyStore:
    """A state store that knows nothing (a fresh deployment)."""

    def load_states(self, student_ids: list[str]) -> dict[str, StudentState]:
        return {}

    def counted(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()

    def known_students(self) -> KnownStudents:
        return KnownStudents(0)

    def counted_since(self, versions: dict[str, int]) -> list[ParsedEvent]:
        return []


def test_examples_exist_for_every_event_type() -> None:
    assert set(VALID_EVENTS) == {"lesson_progress", "quiz_completed", "enrolled", "unenrolled"}
    assert {payload["type"] for payload in VALID_EVENTS.values()} == set(VALID_EVENTS)
    assert CATALOG_ENTRIES and INVALID_EVENTS


@pytest.mark.parametrize("name", sorted(VALID_EVENTS))
def test_valid_example_parses(name: str) -> None:
    payload = VALID_EVENTS[name]
    parsed = parse_event(orjson.dumps(payload), now=EXAMPLES_NOW, max_future=dt.timedelta(0))
    assert parsed.event.type == payload["type"]
    assert parsed.event_id == payload["eventId"]
    assert parsed.local_date.isoformat() == payload["occurredAt"][:10]
    assert parsed.zone_label == payload.get("timezone", payload["occurredAt"][-6:])


@pytest.mark.parametrize("name", sorted(INVALID_EVENTS))
def test_invalid_example_rejected(name: str) -> None:
    payload, field = INVALID_EVENTS[name]
    with pytest.raises(InvalidMessage) as info:
        parse_event(orjson.dumps(payload), now=EXAMPLES_NOW, max_future=dt.timedelta(0))
    assert info.value.field == field


@pytest.mark.parametrize("name", sorted(CATALOG_ENTRIES))
def test_catalog_example_parses(name: str) -> None:
    payload = CATALOG_ENTRIES[name]
    entry = parse_catalog(orjson.dumps(payload))
    assert (entry.course_id, entry.title, entry.total_lessons) == (
        payload["courseId"], payload["title"], payload["totalLessons"],
    )  # fmt: skip
    listed = payload.get("lessons")
    assert entry.lessons == (None if listed is None else tuple(listed))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"title": "T", "totalLessons": 3}, "courseId", id="missing-courseId"),
        pytest.param({"courseId": "c", "title": "T", "totalLessons": "3"}, "totalLessons",
                     id="totalLessons-string"),
        pytest.param({"courseId": "c", "title": "T", "totalLessons": -1}, "totalLessons",
                     id="totalLessons-negative"),
        pytest.param({"courseId": "c", "title": "T", "totalLessons": 2.5}, "totalLessons",
                     id="totalLessons-fraction"),
        pytest.param({"courseId": "", "title": "T", "totalLessons": 3}, "courseId",
                     id="empty-courseId"),
        pytest.param(["c"], None, id="not-an-object"),
    ],
)  # fmt: skip
def test_catalog_rejected(payload: Any, field: str | None) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_catalog(orjson.dumps(payload))
    assert info.value.field == field


def test_examples_through_the_processor() -> None:
    """Valid examples are counted once each; invalid ones become dead letters."""
    processor = EventProcessor(EmptyStore(), max_future_seconds=0)
    messages = [
        Message("learning-events", 0, offset, payload["studentId"].encode(), orjson.dumps(payload))
        for offset, payload in enumerate(VALID_EVENTS.values())
    ]
    invalid = list(INVALID_EVENTS.values())
    messages += [
        Message("learning-events", 1, 100 + i, None, orjson.dumps(payload))
        for i, (payload, _) in enumerate(invalid)
    ]
    result = processor.process(messages, now=EXAMPLES_NOW, version=1)
    assert result.counted == len(VALID_EVENTS)
    assert result.duplicates == 0
    counted_ids = [row[0] for row in result.tables["learning_events"]]
    assert sorted(counted_ids) == sorted(p["eventId"] for p in VALID_EVENTS.values())
    assert [letter.field for letter in result.dead_letters] == [field for _, field in invalid]
    assert [letter.offset for letter in result.dead_letters] == [
        100 + i for i in range(len(invalid))
    ]
    assert len(result.tables["dead_letters"]) == len(invalid)
