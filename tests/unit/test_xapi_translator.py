"""The xAPI translator (``schemas.xapi``, docs/ingest.md) on the 90 real Open edX statements
and on hand-made ones.

Which fixture counts as which event type is written here by hand from reading
the statements against the mapping table (``COUNTED``); the expected event of each is
computed in ``expected_event`` from the statement's own fields, with its own
code (string operations on the ids), never copied from the translator's output.
Every other statement must be accepted, not counted, with its verb.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from typing import Any

import orjson
import pytest

from schemas.events import parse_event
from schemas.xapi import InvalidStatements, Problem, Translation, translate_all
from testkit import xapi_fixtures
from testkit.xapi_fixtures import fixture_names, statements

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
COURSE = "http://adlnet.gov/expapi/activities/course"

# (file, index of the statement in it) -> the type it counts as; everything else is ignored.
COUNTED = {
    ("complete_video.json", 0): "lesson_progress",  # completed, completion true, a video
    ("edx.completion.block_completion.changed.json", 0): "lesson_progress",  # progressed
    ("edx.course.enrollment.activated.json", 0): "enrolled",
    ("edx.course.enrollment.activated.enterprise.json", 0): "enrolled",
    ("edx.course.enrollment.activated.required.only.data.json", 0): "enrolled",
    ("edx.course.enrollment.mode_changed.json", 0): "enrolled",  # registered again
    ("edx.course.enrollment.deactivated.json", 0): "unenrolled",
    ("problem_check(server).json", 0): "quiz_completed",
    ("problem_check(server).max_grade_0.json", 0): "quiz_completed",
    ("problem_check(server)_no_response_type.json", 0): "quiz_completed",
    ("problem_check(server,string_anwers).json", 0): "quiz_completed",
    ("problem_check(server,unsupported_responsetype).json", 0): "quiz_completed",
    # a multi-question check: the problem's statement has the score, the questions' none
    ("problem_check(server).list_answers.json", 0): "quiz_completed",
    ("problem_check(server,multiple_questions,correct).json", 0): "quiz_completed",
    ("problem_check(server,multiple_questions,incorrect).json", 0): "quiz_completed",
    ("problem_check(server,multiple_questions,partial_correct).json", 0): "quiz_completed",
}


def expected_event(statement: dict[str, Any], kind: str) -> dict[str, Any]:
    """The event the mapping says ``statement`` makes, from its fields (Open edX ids only)."""
    target = statement["object"]
    event: dict[str, Any] = {
        "eventId": statement["id"],
        "type": kind,
        "studentId": statement["actor"]["account"]["name"],
        "courseId": _course_of(statement),
        "occurredAt": dt.datetime.fromisoformat(statement["timestamp"]),
    }
    if kind == "lesson_progress":
        event |= {"lessonId": target["id"], "completed": True}
    if kind == "quiz_completed":
        event |= {"quizId": target["id"], "score": 100 * statement["result"]["score"]["scaled"]}
    duration = statement.get("result", {}).get("duration")
    if duration is not None:  # the fixtures' only one is PT03M15S
        minutes, seconds = duration.removeprefix("PT").removesuffix("S").split("M")
        event["timeSpent"] = int(minutes) + int(seconds) / 60
    return event


def _course_of(statement: dict[str, Any]) -> str:
    """The course key: the course object's, else the first course parent's or grouping's."""
    target = statement["object"]
    if target.get("definition", {}).get("type") == COURSE:
        return str(target["id"]).split("/course/")[1]
    activities = statement.get("context", {}).get("contextActivities", {})
    for activity in activities.get("parent", []) + activities.get("grouping", []):
        if activity.get("definition", {}).get("type") == COURSE:
            return str(activity["id"]).split("/course/")[1]
    raise AssertionError("every counted fixture names its course")


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``occurredAt`` as a datetime (the same instant may be spelled two ways)."""
    occurred = event["occurredAt"]
    at = dt.datetime.fromisoformat(occurred) if isinstance(occurred, str) else occurred
    return {**event, "occurredAt": at}


# ----------------------------------------------------------------- fixtures
def test_the_fixture_folder_holds_77_files_and_90_statements() -> None:
    names = fixture_names()
    folder = xapi_fixtures.fixtures_dir()  # raises (fails) when the folder is missing
    assert len(names) == xapi_fixtures.FILES == 77, folder
    per_file = {name: len(statements(name)) for name in names}
    assert {name: n for name, n in per_file.items() if n != 1} == xapi_fixtures.ARRAYS
    assert sum(per_file.values()) == xapi_fixtures.STATEMENTS == 90
    assert {name for name, _ in COUNTED} <= set(names)


@pytest.mark.parametrize("name", fixture_names())
def test_each_fixture_statement_translates_as_the_table_says(name: str) -> None:
    body = xapi_fixtures.load(name)
    translations = translate_all(body, now=NOW)
    assert len(translations) == len(statements(name))
    for index, (statement, translation) in enumerate(
        zip(statements(name), translations, strict=True)
    ):
        assert translation.statement_id == statement["id"]
        assert translation.verb == statement["verb"]["id"]
        kind = COUNTED.get((name, index))
        if kind is None:
            assert translation.event is None, f"{name}[{index}] must not count"
            continue
        assert translation.event is not None, f"{name}[{index}] must count as {kind}"
        assert comparable(translation.event) == expected_event(statement, kind)
        # the worker's own parser accepts it (what the API checks before producing)
        parsed = parse_event(
            orjson.dumps(translation.event), now=NOW, max_future=dt.timedelta(days=1)
        )
        assert parsed.event.type == kind


def test_sixteen_of_the_ninety_count() -> None:
    counted = 0
    for name in fixture_names():
        counted += sum(
            t.event is not None for t in translate_all(xapi_fixtures.load(name), now=NOW)
        )
    assert counted == len(COUNTED) == 16


# --------------------------------------------------------- hand-made cases
def _base(name: str = "problem_check(server).json") -> dict[str, Any]:
    return copy.deepcopy(statements(name)[0])


def _one(statement: Any) -> Translation:
    (translation,) = translate_all(statement, now=NOW)
    return translation


def _problems(body: Any) -> list[Problem]:
    with pytest.raises(InvalidStatements) as caught:
        translate_all(body, now=NOW)
    return caught.value.problems


@pytest.mark.parametrize(
    ("scaled", "score"),
    [(0.853, 85.3), (1, 100.0), (0, 0.0), (1.5, 100.0), (-0.2, 0.0), (7, 100.0), (0.005, 0.5)],
)
def test_score_is_100_times_scaled_clamped_to_0_100(scaled: float, score: float) -> None:
    statement = _base()
    statement["result"]["score"]["scaled"] = scaled
    event = _one(statement).event
    assert event is not None and event["score"] == pytest.approx(score, abs=1e-9)
    assert 0 <= event["score"] <= 100


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.pop("actor"), "actor"),
        (lambda s: s.pop("verb"), "verb"),
        (lambda s: s.pop("object"), "object"),
        (lambda s: s["verb"].pop("id"), "verb.id"),
        (lambda s: s.update(actor="learner-1"), "actor"),
        (lambda s: s.update(verb=["evaluated"]), "verb"),
        (lambda s: s["verb"].update(id=42), "verb.id"),
        (lambda s: s.update(object=None), "object"),
        (lambda s: s["object"].update(id=7), "object.id"),
        (lambda s: s["object"].update(definition="problem"), "object.definition"),
        (lambda s: s.update(id=123), "id"),
        (lambda s: s.update(id=""), "id"),
        (lambda s: s.update(result="passed"), "result"),
        (lambda s: s["result"]["score"].update(scaled="0.5"), "result.score.scaled"),
        (lambda s: s["result"]["score"].update(scaled=True), "result.score.scaled"),
        (lambda s: s["result"]["score"].update(scaled=None), "result.score.scaled"),
        (lambda s: s["result"].update(score=0.5), "result.score"),
        (lambda s: s["result"].update(completion="yes"), "result.completion"),
        (lambda s: s["result"].update(duration=90), "result.duration"),
        (lambda s: s["result"].update(duration="90 minutes"), "result.duration"),
        (lambda s: s.update(timestamp="yesterday"), "timestamp"),
        (lambda s: s.update(timestamp=1594795361), "timestamp"),
        (lambda s: s.update(timestamp="2020-07-15T25:00:00Z"), "timestamp"),
        (lambda s: s.update(context=[]), "context"),
        (lambda s: s["context"].update(contextActivities="course"), "context.contextActivities"),
        (
            lambda s: s["context"]["contextActivities"].update(parent=["course-v1:a+b+c"]),
            "context.contextActivities.parent",
        ),
    ],
)
def test_a_bad_statement_names_its_field(change: Any, field: str) -> None:
    statement = _base()
    change(statement)
    assert _problems(statement) == [Problem(0, field, _problems(statement)[0].message)]
    assert _problems(statement)[0].message


def test_every_bad_statement_of_an_array_is_named_by_index() -> None:
    good = _base()
    no_actor = _base()
    no_actor.pop("actor")
    problems = _problems([good, no_actor, "a statement", good, {"verb": {}}])
    assert [(p.index, p.field) for p in problems] == [
        (1, "actor"),
        (2, "statement"),
        (4, "actor"),  # the first problem of each statement
    ]


@pytest.mark.parametrize("body", ["statements", 42, None, True])
def test_a_body_that_is_no_statement_and_no_array(body: Any) -> None:
    assert [(p.index, p.field) for p in _problems(body)] == [(None, "body")]


def test_an_empty_array_is_no_statement() -> None:
    assert translate_all([], now=NOW) == []


# ------------------------------------------------------------ identifiers
@pytest.mark.parametrize(
    ("actor", "student", "source"),
    [
        ({"account": {"homePage": "h", "name": "u1"}, "mbox": "mailto:a@b"}, "u1", "account.name"),
        ({"mbox": "mailto:ann@example.org"}, "mailto:ann@example.org", "mbox"),
        ({"mbox_sha1sum": "ab" * 20}, "ab" * 20, "mbox_sha1sum"),
        ({"openid": "https://id.example/ann"}, "https://id.example/ann", "openid"),
        ({"account": {"homePage": "h"}, "openid": "https://id/x"}, "https://id/x", "openid"),
    ],
)
def test_the_learner_is_the_account_name_else_mbox_sha1_openid(
    actor: dict[str, Any], student: str, source: str
) -> None:
    statement = _base()
    statement["actor"] = {"objectType": "Agent", **actor}
    translation = _one(statement)
    assert translation.event is not None and translation.event["studentId"] == student
    assert translation.source_of("studentId") == f"actor.{source}"


def test_a_counted_statement_without_a_learner_is_refused_an_ignored_one_is_not() -> None:
    counted = _base()
    counted["actor"] = {"objectType": "Group", "member": []}
    assert [(p.index, p.field) for p in _problems(counted)] == [(0, "actor")]
    ignored = _base("play_video.json")
    ignored["actor"] = {"objectType": "Group", "member": []}
    assert _one(ignored).event is None


def test_a_counted_statement_without_a_course_is_refused() -> None:
    statement = _base()
    statement.pop("context")
    statement["object"]["id"] = "https://lms.example/quiz/9"
    assert [(p.index, p.field) for p in _problems(statement)] == [(0, "context.contextActivities")]
    statement["verb"]["id"] = "https://w3id.org/xapi/video/verbs/played"
    assert _one(statement).event is None  # not counted: no course needed


def test_the_course_comes_from_grouping_when_no_parent_is_a_course() -> None:
    question = copy.deepcopy(statements("problem_check(server).list_answers.json")[1])
    question["result"]["score"] = {"scaled": 1}  # now it counts
    translation = _one(question)
    assert translation.event is not None
    assert translation.event["courseId"] == "course-v1:edX+DemoX+Demo_Course"
    assert translation.source_of("courseId") == "context.contextActivities.grouping.0.id"


@pytest.mark.parametrize(
    ("object_id", "course"),
    [
        (
            "http://lms/xblock/block-v1:edX+DemoX+Demo_Course+type@problem+block@3fc5",
            "course-v1:edX+DemoX+Demo_Course",
        ),
        ("block-v1:Org+C1+2026_T1+type@video+block@ab12", "course-v1:Org+C1+2026_T1"),
        (
            "http://lms/xblock/ccx-block-v1:edX+DemoX+Demo_Course+ccx@1+type@problem+block@3f",
            "ccx-v1:edX+DemoX+Demo_Course+ccx@1",
        ),
    ],
)
def test_the_course_comes_from_the_block_key_without_context(object_id: str, course: str) -> None:
    statement = _base()
    statement.pop("context")
    statement["object"]["id"] = object_id
    event = _one(statement).event
    assert event is not None and event["courseId"] == course and event["quizId"] == object_id


def test_a_single_parent_object_and_a_ccx_course() -> None:
    statement = _base()
    parent = statements("problem_check(browser).ccx.json")[0]["context"]["contextActivities"][
        "parent"
    ][0]
    statement["context"]["contextActivities"] = {"parent": parent}  # one object, not an array
    event = _one(statement).event
    assert event is not None and event["courseId"] == "ccx-v1:edX+DemoX+Demo_Course+ccx@1"


def test_a_course_of_another_lms_is_its_activity_id() -> None:
    statement = _base("edx.course.enrollment.activated.json")
    statement["object"]["id"] = "https://lms.example.org/courses/42"
    event = _one(statement).event
    assert event is not None and event["courseId"] == "https://lms.example.org/courses/42"


def test_a_counted_statement_needs_an_object_id() -> None:
    statement = _base("edx.completion.block_completion.changed.json")
    statement["object"].pop("id")
    assert [(p.index, p.field) for p in _problems(statement)] == [(0, "object.id")]


# ------------------------------------------------------------ which verbs count
@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("edx.completion.block_completion.changed.json", lambda s: s["result"].pop("completion")),
        (
            "edx.completion.block_completion.changed.json",
            lambda s: s["result"].update(completion=False),
        ),
        (  # completing a course is not a lesson
            "edx.completion.block_completion.changed.json",
            lambda s: s["object"]["definition"].update(type=COURSE),
        ),
        (  # registering for something that is not a course
            "edx.course.enrollment.activated.json",
            lambda s: s["object"]["definition"].update(type="http://x/activities/meeting"),
        ),
        ("problem_check(server).json", lambda s: s["result"]["score"].pop("scaled")),
        ("problem_check(server).json", lambda s: s.pop("result")),
    ],
)
def test_statements_outside_the_table_are_accepted_not_counted(name: str, change: Any) -> None:
    statement = _base(name)
    change(statement)
    translation = _one(statement)
    assert translation.event is None and translation.verb == statement["verb"]["id"]


# ------------------------------------------------------------ time
@pytest.mark.parametrize(
    ("duration", "minutes"),
    [
        ("PT03M15S", 3.25),
        ("PT1H30M", 90.0),
        ("PT45S", 0.75),
        ("PT0.5M", 0.5),
        ("PT2,5S", 2.5 / 60),
        ("PT25H", 1440.0),  # more than a day: the most one event may carry
        ("P2D", 1440.0),
        ("P1W", 1440.0),
        ("PT0S", 0.0),
    ],
)
def test_time_spent_is_the_duration_in_minutes(duration: str, minutes: float) -> None:
    statement = _base()
    statement["result"]["duration"] = duration
    event = _one(statement).event
    assert event is not None and event["timeSpent"] == pytest.approx(minutes)


@pytest.mark.parametrize("duration", ["P", "PT", "1H", "PT1H30", "-PT1M", "PT1.5.2S", "pt1m"])
def test_a_bad_duration_is_refused(duration: str) -> None:
    statement = _base()
    statement["result"]["duration"] = duration
    assert [(p.index, p.field) for p in _problems(statement)] == [(0, "result.duration")]


@pytest.mark.parametrize(
    ("timestamp", "occurred"),
    [
        ("2026-11-20T08:00:00+01:00", dt.datetime(2026, 11, 20, 7, 0, tzinfo=dt.UTC)),
        ("2026-11-20T08:00:00Z", dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)),
        ("2026-11-20T08:00:00", dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)),  # no offset
        ("2026-11-20T08:00:00.123456789Z", dt.datetime(2026, 11, 20, 8, 0, 0, 123456, dt.UTC)),
    ],
)
def test_occurred_at_is_the_timestamp_utc_without_offset(
    timestamp: str, occurred: dt.datetime
) -> None:
    statement = _base()
    statement["timestamp"] = timestamp
    event = _one(statement).event
    assert event is not None
    assert dt.datetime.fromisoformat(event["occurredAt"]) == occurred
    assert dt.datetime.fromisoformat(event["occurredAt"]).utcoffset() is not None


def test_the_offset_of_the_timestamp_is_kept() -> None:
    statement = _base()
    statement["timestamp"] = "2026-11-20T23:30:00-05:00"
    event = _one(statement).event
    assert event is not None
    assert dt.datetime.fromisoformat(event["occurredAt"]).utcoffset() == dt.timedelta(hours=-5)


def test_a_statement_without_timestamp_happened_now() -> None:
    statement = _base()
    statement.pop("timestamp")
    event = _one(statement).event
    assert event is not None and dt.datetime.fromisoformat(event["occurredAt"]) == NOW


# ------------------------------------------------------------ ids
def test_ids_are_kept_in_order_and_missing_ones_made() -> None:
    made = (f"made-{n}" for n in itertools.count())
    first, second, third = _base(), _base(), _base("play_video.json")
    second.pop("id")
    third.pop("id")
    translations = translate_all([first, second, third], now=NOW, new_id=lambda: next(made))
    assert [t.statement_id for t in translations] == [first["id"], "made-0", "made-1"]
    assert translations[1].event is not None and translations[1].event["eventId"] == "made-0"


def test_generated_ids_are_uuids() -> None:
    statement = _base()
    statement.pop("id")
    first, second = translate_all([statement, statement], now=NOW)
    assert first.statement_id != second.statement_id and len(first.statement_id) == 36


def test_sources_name_the_statement_field_of_each_event_field() -> None:
    translation = _one(_base())
    assert translation.source_of("eventId") == "id"
    assert translation.source_of("occurredAt") == "timestamp"
    assert translation.source_of("quizId") == "object.id"
    assert translation.source_of("score") == "result.score.scaled"
    assert translation.source_of("courseId") == "context.contextActivities.parent.0.id"
    assert translation.source_of("studentId") == "actor.account.name"
    assert translation.source_of(None) == "statement"
