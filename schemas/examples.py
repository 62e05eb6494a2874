"""Example payloads of the wire formats (docs/api.md), for producers, docs and tests.

``VALID_EVENTS`` holds one valid message of each event type of topic
``learning-events``; ``CATALOG_ENTRIES`` a message of topic ``course-catalog``;
``INVALID_EVENTS`` messages that must be rejected, each with the field that
``InvalidMessage.field`` names (None when the message as a whole is bad).

Every example is a JSON-able dict (``orjson.dumps`` gives the message value).
The valid events all happened before ``EXAMPLES_NOW``, the clock to validate
them with (``parse_event(..., now=EXAMPLES_NOW, ...)``); a unit test runs every
example through the parsers and through ``EventProcessor``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# A clock at which every valid example is valid (none is in the future).
EXAMPLES_NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)

VALID_EVENTS: dict[str, dict[str, Any]] = {
    "enrolled": {
        "eventId": "ex-enrolled-1",
        "type": "enrolled",
        "studentId": "s-example",
        "courseId": "c-knitting-101",
        "occurredAt": "2026-11-20T08:00:00+01:00",
        "timezone": "Europe/Paris",
    },
    "lesson_progress": {
        "eventId": "ex-lesson-1",
        "type": "lesson_progress",
        "studentId": "s-example",
        "courseId": "c-knitting-101",
        "moduleId": "m-basics",
        "lessonId": "l-casting-on",
        "completed": True,
        "timeSpent": 25,
        "progress": 4.2,
        "occurredAt": "2026-11-20T08:30:00+01:00",
        "timezone": "Europe/Paris",
    },
    "quiz_completed": {
        "eventId": "ex-quiz-1",
        "type": "quiz_completed",
        "studentId": "s-example",
        "courseId": "c-knitting-101",
        "moduleId": "m-basics",
        "quizId": "q-stitches",
        "score": 85,
        "timeSpent": 7.5,
        "occurredAt": "2026-11-20T09:00:00+01:00",
    },
    "unenrolled": {
        "eventId": "ex-unenrolled-1",
        "type": "unenrolled",
        "studentId": "s-example",
        "courseId": "c-crochet-201",
        "occurredAt": "2026-11-21T18:15:00-05:00",
        "timezone": "America/New_York",
    },
}

CATALOG_ENTRIES: dict[str, dict[str, Any]] = {
    "knitting_101": {"courseId": "c-knitting-101", "title": "Knitting 101", "totalLessons": 24},
    # Only these lessons count (docs/api.md § What a student can and cannot claim).
    "crochet_201_listed": {
        "courseId": "c-crochet-201",
        "title": "Crochet 201",
        "totalLessons": 3,
        "lessons": ["l-chain", "l-single-crochet", "l-granny-square"],
    },
}

_LESSON = VALID_EVENTS["lesson_progress"]
_QUIZ = VALID_EVENTS["quiz_completed"]

# name -> (payload, the field InvalidMessage names)
INVALID_EVENTS: dict[str, tuple[Any, str | None]] = {
    "not_an_object": ([_LESSON], None),
    "missing_event_id": ({k: v for k, v in _LESSON.items() if k != "eventId"}, "eventId"),
    "unknown_type": ({**_LESSON, "type": "lesson_started"}, "type"),
    "occurred_at_without_offset": ({**_LESSON, "occurredAt": "2026-11-20T08:30:00"}, "occurredAt"),
    "time_spent_as_text": ({**_LESSON, "timeSpent": "25"}, "timeSpent"),
    "lesson_without_completed": (
        {k: v for k, v in _LESSON.items() if k != "completed"},
        "completed",
    ),
    "quiz_score_over_100": ({**_QUIZ, "score": 120}, "score"),
    "unknown_timezone": ({**_LESSON, "timezone": "Europe/Atlantis"}, "timezone"),
}
