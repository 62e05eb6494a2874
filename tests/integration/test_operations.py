"""Operations on the real stack: ``eduknit check``, ``resync`` and ``import`` (docs/operations.md).

Each runs as a user runs it, a separate process beside ``eduknit run`` (which
holds the embedded engine, so the commands go through its API and its Kafka),
and every dashboard is then compared with the independent reference.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from testkit.compare import check_student, wait_for_match
from testkit.harness import RetryingProducer, Streamer, all_match, interleave
from testkit.history import delivery_order, student_history
from testkit.stack import ROOT, SECRET, Producer, Stack
from testkit.tamper import tamper

pytestmark = pytest.mark.integration

COURSES = ["o-knit", "o-crochet", "o-dye"]
CATALOG = {"o-knit": ("Knitting", 8), "o-crochet": ("Crochet", 5)}


def eduknit(
    stack: Stack, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m eduknit.cli ARGS`` against ``stack``, as a user would."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EDUKNIT_DATA_DIR": str(stack.data_dir),
        "EDUKNIT_KAFKA_PORT": str(stack.kafka_port),
        "EDUKNIT_API_PORT": str(stack.api_port),
        "EDUKNIT_JWT_SECRET": SECRET,
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("CLICKHOUSE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "eduknit.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
        input=stdin.decode() if stdin is not None else None,
        text=True,
    )


def _send(stack: Stack, histories: dict[str, list[dict[str, Any]]], rng: random.Random) -> dict:
    producer = Producer(stack.bootstrap)
    for course, (title, total) in CATALOG.items():
        producer.course(course, title, total)
    sent = {}
    for student, events in histories.items():
        sent[student] = delivery_order(rng, events)
        for event in sent[student]:
            producer.event(event)
    producer.flush()
    return sent


def _matches(stack: Stack, sent: dict[str, list[dict[str, Any]]]) -> None:
    wait_for_match(
        lambda: [p for s, ev in sent.items() for p in check_student(stack, s, ev, CATALOG)],
        timeout=90,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


def test_check_finds_a_tampered_row_and_resync_repairs_it(tmp_path: Path) -> None:
    rng = random.Random(11)
    now = dt.datetime.now(dt.UTC)
    histories = {f"t-{i}": student_history(rng, f"t-{i}", COURSES, now, days=12) for i in range(6)}
    stack = Stack(tmp_path).start()
    try:
        sent = _send(stack, histories, rng)
        _matches(stack, sent)
        clean = eduknit(stack, "check", "--all")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "checked 6 students" in clean.stdout
    finally:
        assert stack.stop() == 0
    victim = "t-3"
    tamper(tmp_path, victim)  # straight into ClickHouse, the stack stopped

    stack = Stack(tmp_path).start()
    try:
        found = eduknit(stack, "check", "--all")
        assert found.returncode == 1, found.stdout + found.stderr
        lines = [line for line in found.stdout.splitlines() if line.startswith(victim)]
        assert len(lines) == 1, found.stdout
        assert "realtime.summary.totalPoints" in lines[0], found.stdout
        assert "1 differ" in found.stdout
        served = stack.get("/api/dashboard/realtime", victim).json()["summary"]["totalPoints"]

        repaired = eduknit(stack, "resync", "--student", victim)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "1 of 1 students rebuilt" in repaired.stdout
        _matches(stack, sent)  # the reference again, the tampered points gone
        now_served = stack.get("/api/dashboard/realtime", victim).json()["summary"]
        assert now_served["totalPoints"] == served - 50
        again = eduknit(stack, "check", "--all")
        assert again.returncode == 0, again.stdout + again.stderr
        twice = eduknit(stack, "resync", "--all")  # idempotent
        assert twice.returncode == 0 and "6 of 6 students rebuilt" in twice.stdout, twice.stdout
        _matches(stack, sent)
    finally:
        assert stack.stop() == 0


def test_resync_during_live_traffic_loses_and_doubles_nothing(stack: Stack) -> None:
    rng = random.Random(12)
    now = dt.datetime.now(dt.UTC)
    students = [f"live-{i}" for i in range(12)]
    histories = {s: student_history(rng, s, COURSES, now, days=20) for s in students}
    producer = RetryingProducer(stack.bootstrap)
    for course, (title, total) in CATALOG.items():
        producer.course(course, title, total)
    first = {s: events[: len(events) // 3] for s, events in histories.items()}
    rest = {s: delivery_order(rng, events[len(events) // 3 :]) for s, events in histories.items()}
    for event in interleave(rng, first):
        producer.send(event)
    producer.flush()
    all_match(stack, producer.sent, CATALOG)
    with Streamer(producer, interleave(rng, rest), rate=60) as streamer:
        runs = 0
        while not streamer.done or runs < 2:  # the same students, while their events arrive
            # waves of 5 of the 12 students: two waves in flight, the last one short
            result = eduknit(stack, "resync", "--all", "--wave", "5")
            assert result.returncode == 0, result.stdout + result.stderr
            assert "12 of 12 students rebuilt" in result.stdout, result.stdout
            runs += 1
        streamer.wait(120)
    producer.resend_all(rng)  # and every event again: still counted once
    producer.flush()
    all_match(stack, producer.sent, CATALOG)
    assert runs >= 2
    check = eduknit(stack, "check", "--all")
    assert check.returncode == 0, check.stdout + check.stderr


def test_import_reports_bad_lines_and_counts_once(stack: Stack, tmp_path: Path) -> None:
    rng = random.Random(13)
    now = dt.datetime.now(dt.UTC)
    histories = {
        f"imp-{i}": student_history(rng, f"imp-{i}", COURSES, now, days=15) for i in range(4)
    }
    good = [e for events in histories.values() for e in events]
    rng.shuffle(good)
    lines = [orjson.dumps(e) for e in good]
    bad = {
        3: b"{not json",
        7: orjson.dumps(
            {
                **good[0],
                "eventId": "imp-bad-1",
                "score": 101,
                "type": "quiz_completed",
                "quizId": "q",
            }
        ),
        12: orjson.dumps({k: v for k, v in good[1].items() if k != "studentId"}),
    }
    for number in sorted(bad):  # 1-based line numbers
        lines.insert(number - 1, bad[number])
    lines.insert(5, b"   ")  # whitespace only: not an event, not an error
    path = tmp_path / "backfill.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    blank = 6
    expected_bad = sorted(n if n < blank else n + 1 for n in bad)

    catalog = Producer(stack.bootstrap)
    for course, (title, total) in CATALOG.items():
        catalog.course(course, title, total)
    catalog.flush()
    first = eduknit(stack, "import", str(path))
    assert first.returncode == 1, first.stdout + first.stderr
    reported = [line for line in first.stderr.splitlines() if line.startswith("line ")]
    assert [int(line.split()[1].rstrip(":")) for line in reported] == expected_bad, first.stderr
    assert "score" in reported[1] and "studentId" in reported[2], first.stderr
    assert f"{len(good):,} events sent" in first.stdout and "3 lines skipped" in first.stdout
    sent = {s: list(events) for s, events in histories.items()}
    _matches(stack, sent)

    second = eduknit(stack, "import", "-", stdin=path.read_bytes())  # again, from stdin
    assert second.returncode == 1 and f"{len(good):,} events sent" in second.stdout
    marker = {
        "eventId": f"imp-0-marker-{uuid.uuid4().hex[:6]}",
        "type": "enrolled",
        "studentId": "imp-0",
        "courseId": COURSES[0],
        "occurredAt": now.isoformat(),
    }
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(orjson.dumps(marker) + b"\n")
    assert eduknit(stack, "import", str(clean)).returncode == 0
    sent["imp-0"].append(marker)
    _matches(stack, sent)  # after the marker: the second import counted nothing twice
