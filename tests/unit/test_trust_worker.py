"""What the worker refuses at the edge (docs/api.md § What a student can and cannot claim).

- ids holding control characters are dead letters naming the field, however the
  character arrives (escaped, DEL, C1), and plain ids cost no look (the prefilter);
- catalog messages may list lessons (checked like ids, repeats kept once);
- a ``lesson_progress`` event for a lesson its course's list does not name is a
  dead letter with reason ``unknown_lesson`` and field ``lessonId``; other types,
  courses without a list and listed lessons count;
- the worker's lists follow ``course_catalog`` in the embedded engine
  (``CatalogPoller``: read again only when the table changed).

Expected values are worked out from the contract, not copied from the code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from infra.clickhouse import migrate
from schemas.catalog import parse_catalog
from schemas.errors import InvalidMessage
from schemas.events import may_hold_control_characters, parse_event
from streams.catalog import catalog_rows
from streams.lesson_catalog import CatalogPoller, LessonCatalog
from streams.processor import UNKNOWN_LESSON, EventProcessor, Message
from streams.sink import ClickHouseSink
from tests.unit.test_processor import MemoryStore

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
EVENT: dict[str, Any] = {
    "eventId": "e-1", "type": "lesson_progress", "studentId": "s-1", "courseId": "c-1",
    "lessonId": "l-1", "moduleId": "m-1", "completed": True,
    "occurredAt": "2026-11-25T10:00:00Z",
}  # fmt: skip


def _parse(raw: bytes) -> Any:
    return parse_event(raw, now=NOW, max_future=DAY)


@pytest.mark.parametrize("field", ["eventId", "studentId", "courseId", "moduleId", "lessonId"])
@pytest.mark.parametrize("character", ["\x00", "\n", "\x1f", "\x7f", "\x85", "\x9f"])
def test_an_id_with_a_control_character_is_refused_naming_it(field: str, character: str) -> None:
    raw = orjson.dumps({**EVENT, field: f"a{character}b"})
    with pytest.raises(InvalidMessage) as caught:
        _parse(raw)
    assert caught.value.field == field
    assert "control characters" in caught.value.reason


def test_quiz_ids_are_checked_too() -> None:
    quiz = {**EVENT, "type": "quiz_completed", "quizId": "q\u0000", "score": 50}
    with pytest.raises(InvalidMessage) as caught:
        _parse(orjson.dumps(quiz))
    assert caught.value.field == "quizId"


@pytest.mark.parametrize("value", ["l-1", "leçon-1", "урок", "課-1", "a b", "a\u00a0b", "a\\b"])
def test_printable_ids_are_accepted(value: str) -> None:
    assert _parse(orjson.dumps({**EVENT, "lessonId": value})).event.lesson_id == value


def test_the_prefilter_only_skips_messages_that_cannot_hold_a_control_character() -> None:
    assert not may_hold_control_characters(orjson.dumps(EVENT))
    assert not may_hold_control_characters(orjson.dumps({**EVENT, "lessonId": "leçon"}))
    for character in ("\x00", "\n", "\x7f", "\x85"):
        assert may_hold_control_characters(orjson.dumps({**EVENT, "lessonId": character}))


def test_catalog_lessons_are_ids_kept_once_in_order() -> None:
    entry = parse_catalog(
        b'{"courseId": "c", "title": "T", "totalLessons": 3, "lessons": ["b", "a", "b"]}'
    )
    assert entry.lessons == ("b", "a")
    assert parse_catalog(b'{"courseId": "c", "title": "T", "totalLessons": 3}').lessons is None
    empty = parse_catalog(b'{"courseId":"c","title":"T","totalLessons":0,"lessons":[]}')
    assert empty.lessons == ()
    for bad, field in (
        (b'{"courseId":"c","title":"T","totalLessons":3,"lessons":["a",""]}', "lessons.1"),
        (b'{"courseId":"c","title":"T","totalLessons":3,"lessons":["a\\u0000"]}', "lessons.0"),
        (b'{"courseId":"c","title":"T","totalLessons":3,"lessons":"a"}', "lessons"),
        (b'{"courseId":"c\\n","title":"T","totalLessons":3}', "courseId"),
    ):
        with pytest.raises(InvalidMessage) as caught:
            parse_catalog(bad)
        assert caught.value.field == field


def test_catalog_rows_carry_the_list_and_whether_there_is_one() -> None:
    versions = iter(range(1, 10))
    messages = [
        Message("course-catalog", 0, 1, b"a", b'{"courseId":"a","title":"A","totalLessons":2}'),
        Message(
            "course-catalog", 0, 2, b"b",
            b'{"courseId":"b","title":"B","totalLessons":2,"lessons":["x","y"]}',
        ),
        Message("course-catalog", 0, 3, b"c", None),
    ]  # fmt: skip
    rows, letters = catalog_rows(messages, NOW, lambda: next(versions))
    assert letters == []
    assert [(r[0], r[3], r[4], r[5]) for r in rows] == [
        ("a", [], 0, 0),
        ("b", ["x", "y"], 1, 0),
        ("c", [], 0, 1),
    ]


def _message(offset: int, **changes: Any) -> Message:
    event = {**EVENT, "eventId": f"e-{offset}", **changes}
    return Message("learning-events", 0, offset, event["studentId"].encode(), orjson.dumps(event))


def test_a_lesson_the_course_does_not_list_is_a_dead_letter() -> None:
    lessons = LessonCatalog({"c-1": frozenset({"l-1", "l-2"})})
    processor = EventProcessor(MemoryStore(), lessons=lessons)
    result = processor.process(
        [
            _message(1, lessonId="l-1"),
            _message(2, lessonId="l-made-up"),
            _message(3, lessonId="l-made-up", completed=False, timeSpent=30),
            _message(4, type="quiz_completed", quizId="q", score=90),  # quizzes: not judged
            _message(5, courseId="c-open", lessonId="anything"),  # no list: any lesson
            _message(6, type="enrolled"),
        ],
        now=NOW,
        version=1,
    )
    assert [(d.offset, d.reason, d.field) for d in result.dead_letters] == [
        (2, UNKNOWN_LESSON, "lessonId"),
        (3, UNKNOWN_LESSON, "lessonId"),
    ]
    assert sorted(r[0] for r in result.tables["learning_events"]) == ["e-1", "e-4", "e-5", "e-6"]


def test_a_list_applied_later_judges_the_next_events_only() -> None:
    lessons = LessonCatalog()
    processor = EventProcessor(MemoryStore(), lessons=lessons)
    first = processor.process([_message(1, lessonId="l-9")], now=NOW, version=1)
    assert first.counted == 1 and not first.dead_letters
    lessons.apply("c-1", ["l-1"])
    second = processor.process([_message(2, lessonId="l-9")], now=NOW, version=2)
    assert second.counted == 0 and [d.reason for d in second.dead_letters] == [UNKNOWN_LESSON]
    lessons.apply("c-1", None)  # the list withdrawn: any lesson again
    third = processor.process([_message(3, lessonId="l-9")], now=NOW, version=3)
    assert third.counted == 1


def _catalog(client: Client, course: str, lessons: list[str] | None, version: int) -> None:
    entry: dict[str, Any] = {"courseId": course, "title": course, "totalLessons": 3}
    if lessons is not None:
        entry["lessons"] = lessons
    message = Message("course-catalog", 0, version, course.encode(), orjson.dumps(entry))
    rows, _ = catalog_rows([message], NOW, lambda: version)
    ClickHouseSink(client).write({"course_catalog": rows})


def test_the_poller_follows_course_catalog_and_reads_only_after_a_change(
    empty_db: Client,
) -> None:
    migrate(empty_db)
    clock = [0.0]
    lessons = LessonCatalog()
    poller = CatalogPoller(empty_db, lessons, interval=1.0, clock=lambda: clock[0])
    assert poller.refresh_if_due() is True and lessons.lists == {}
    _catalog(empty_db, "c-a", ["l-1", "l-2"], 10)
    _catalog(empty_db, "c-b", None, 11)
    assert poller.refresh_if_due() is False  # within the interval: no query
    clock[0] = 1.5
    assert poller.refresh_if_due() is True
    assert lessons.lists == {"c-a": frozenset({"l-1", "l-2"})}
    clock[0] = 3.0
    assert poller.refresh_if_due() is False  # nothing changed: the lists are not read
    _catalog(empty_db, "c-a", ["l-1"], 12)  # a later entry replaces the list
    _catalog(empty_db, "c-b", ["x"], 13)
    clock[0] = 4.5
    assert poller.refresh_if_due() is True
    assert lessons.lists == {"c-a": frozenset({"l-1"}), "c-b": frozenset({"x"})}
    ClickHouseSink(empty_db).write({"course_catalog": [["c-a", "", 0, [], 0, 1, NOW, 14]]})
    clock[0] = 6.0
    assert poller.refresh_if_due() is True  # a tombstone removes the list
    assert lessons.lists == {"c-b": frozenset({"x"})}
