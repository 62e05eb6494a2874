"""The real Open edX xAPI statements the tests run (``../shared/fixtures/xapi-openedx``).

They stay outside the repository (``/work/shared/fixtures/README.md``: use them
by path, do not copy them in): ``fixtures_dir()`` is
``<repository>/../shared/fixtures/xapi-openedx``, or ``EDUKNIT_XAPI_FIXTURES``
when set. A missing folder is an error (``FixturesMissing``), never a skip: a
test that cannot see them must fail.

The folder holds 77 files (event-routing-backends' expected outputs, one per
Open edX event); 73 hold one statement, 4 an array (a multi-question problem
check is one statement for the problem and one per question): 90 statements.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
FILES = 77
STATEMENTS = 90
ARRAYS = {  # file -> statements in it; every other file holds one statement object
    "problem_check(server).list_answers.json": 5,
    "problem_check(server,multiple_questions,correct).json": 4,
    "problem_check(server,multiple_questions,incorrect).json": 4,
    "problem_check(server,multiple_questions,partial_correct).json": 4,
}


class FixturesMissing(AssertionError):
    """The fixture folder is not where the tests look for it."""


def fixtures_dir() -> Path:
    """The fixture folder (``EDUKNIT_XAPI_FIXTURES`` or next to the repository)."""
    override = os.environ.get("EDUKNIT_XAPI_FIXTURES")
    folder = Path(override) if override else ROOT.parent / "shared" / "fixtures" / "xapi-openedx"
    if not folder.is_dir():
        raise FixturesMissing(
            f"the Open edX xAPI fixtures are not at {folder} "
            "(set EDUKNIT_XAPI_FIXTURES to their folder)"
        )
    return folder


def fixture_names() -> list[str]:
    """The fixture file names, sorted; empty when the folder is missing (the count
    tests then fail with ``FixturesMissing``)."""
    try:
        return sorted(path.name for path in fixtures_dir().glob("*.json"))
    except FixturesMissing:
        return []


def load(name: str) -> Any:
    """One fixture file as decoded JSON (a statement or an array of statements)."""
    return orjson.loads((fixtures_dir() / name).read_bytes())


def statements(name: str) -> list[dict[str, Any]]:
    """The statements of one fixture file, as a list."""
    body = load(name)
    return body if isinstance(body, list) else [body]
