"""``make chaos``: the long fault-injection runs, summed up in one table.

Each fault runs on a fresh stack (``python -m eduknit.cli run`` with
``EDUKNIT_FAULTS=1``, see ``testkit/harness.py``) while a producer streams
varied, shuffled, duplicated histories:

- ``sigkill``: the worker+API process SIGKILLed 10 times at random points;
- ``broker``: the memory-only broker SIGKILLed mid-stream, producers re-send;
- ``outage``: ClickHouse down for 30 s (``infra.faults``), /readyz and the
  dashboards must answer 503 meanwhile;
- ``duplicates``: everything re-sent twice (once after a worker kill), most of it
  older than ``EDUKNIT_RECENT_IDS_DAYS=1``, some of it ~300 days old;
- ``api-kill``: the API killed during POST progress/update 6 times, retried with
  the same eventId;
- ``load``: 200 concurrent dashboard readers for 60 s (``bench.http_load``)
  while events are ingested at a steady rate;
- ``memory``: 120k events of 24k students with a 2,000-student state cache; the
  worker's RSS is sampled.

Then every student's dashboards are compared with ``testkit/reference.py`` through
the API, the stack is stopped and ``testkit/ledger.py`` reads what
ClickHouse counted: events counted (distinct ids in ``learning_events``), lost
(sent but never counted) and duplicates counted (quiz attempts or lesson
completions applied more than once). A fault passes when nothing is lost,
nothing is counted twice, minutes add up and every dashboard equals the reference.

    python -m bench.chaos [--only sigkill,outage] [--markdown BENCHMARKS-chaos.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from testkit.harness import (
    Event,
    FaultStack,
    RetryingProducer,
    Streamer,
    differences,
    interleave,
    rss_kib,
)
from testkit.history import delivery_order, student_history
from testkit.ledger import read_counted, tally

ROOT = Path(__file__).resolve().parents[1]
COURSES = ["x-knit", "x-crochet", "x-dye", "x-spin"]
CATALOG = {"x-knit": ("Knitting", 8), "x-crochet": ("Crochet", 5), "x-spin": ("Spinning", 3)}


@dataclass
class Row:
    fault: str
    sent: int = 0
    counted: int = 0
    duplicates: int = 0
    lost: int = 0
    result: str = "FAIL"
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def histories(
    rng: random.Random, prefix: str, students: int, days: int = 20
) -> dict[str, list[Event]]:
    now = dt.datetime.now(dt.UTC)
    return {
        f"{prefix}-{i:03d}": student_history(rng, f"{prefix}-{i:03d}", COURSES, now, days)
        for i in range(students)
    }


def shuffled_stream(rng: random.Random, hist: dict[str, list[Event]]) -> list[Event]:
    return interleave(rng, {s: delivery_order(rng, e) for s, e in hist.items()})


def send_catalog(producer: RetryingProducer) -> None:
    for course, (title, total) in CATALOG.items():
        producer.course(course, title, total)


def wait_match(stack: FaultStack, sent: dict[str, list[Event]], timeout: float) -> list[str]:
    """[] once every dashboard equals the reference, else the last differences."""
    deadline = time.monotonic() + timeout
    while True:
        problems = differences(stack, sent, CATALOG)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(2)


def finish(
    row: Row, stack: FaultStack, producer: RetryingProducer, timeout: float = 240,
    sample: list[str] | None = None,
) -> Row:  # fmt: skip
    """Compare with the reference, stop the stack, count from ClickHouse, fill the row."""
    producer.flush(120)
    checked = {s: producer.sent[s] for s in sample} if sample else producer.sent
    problems = wait_match(stack, checked, timeout)
    stack.stop()
    counted = read_counted(stack.data_dir, sorted(producer.sent))
    t = tally(producer.sent, counted, producer.messages)
    row.sent, row.counted, row.duplicates, row.lost = (
        t.sent,
        t.counted,
        t.duplicates_counted,
        t.lost,
    )
    row.notes.insert(0, f"{t.unique} distinct")
    if problems:
        (stack.data_dir / "differences.txt").write_text("\n\n".join(problems))
        row.notes.append(
            f"{len(problems)} dashboard differences (all in {stack.data_dir}/differences.txt),"
            f" e.g. {problems[0][:200]!r}"
        )
    if t.minutes_off:
        row.notes.append(f"minutes differ for {t.minutes_off} students")
    ok = not problems and t.lost == 0 and t.duplicates_counted == 0 and t.minutes_off == 0
    row.result = "PASS" if ok and row.result != "FAIL-CHECK" else "FAIL"
    return row


# ------------------------------------------------------------------ faults
def fault_sigkill(work: Path, rng: random.Random, kills: int = 10) -> Row:
    row = Row(f"worker SIGKILL x{kills}, 20 hot states")
    stream = shuffled_stream(rng, histories(rng, "kill", 60))
    # 20 of the 60 students' states kept as objects and a snapshot every 2 s: the kills
    # land while states are packed, frozen and thawed, and restarts read those snapshots.
    stack = FaultStack(
        work, EDUKNIT_BATCH_MAX_EVENTS="200", EDUKNIT_HOT_STATE_STUDENTS="20",
        EDUKNIT_SNAPSHOT_SECONDS="2",
    ).start()  # fmt: skip
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        downtime = []
        with Streamer(producer, stream, rate=12) as streamer:
            for _ in range(kills):
                time.sleep(rng.uniform(0.5, 4.0))
                downtime.append(stack.kill_worker(timeout=120))
            streamer.rate = 0  # the rest at full speed
            streamer.wait(300)
        fastest, slowest = f"{min(downtime):.0f}", f"{max(downtime):.0f}"
        span = fastest if fastest == slowest else f"{fastest}-{slowest}"
        row.notes.append(f"restart to ready {span} s")
        return finish(row, stack, producer)
    finally:
        stack.stop()


def fault_broker(work: Path, rng: random.Random) -> Row:
    row = Row("broker restart (fresh, empty)")
    stream = shuffled_stream(rng, histories(rng, "brk", 40))
    half = len(stream) // 2
    stack = FaultStack(work).start()
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        with Streamer(producer, stream[:half], rate=half / 10) as streamer:
            time.sleep(4)
            back = stack.kill_broker()
            streamer.wait(120)
        producer.flush(120)
        send_catalog(producer)
        resent = producer.resend_all(rng)
        for event in stream[half:]:
            producer.send(event)
        row.notes.append(f"broker back in {back:.1f} s, producers re-sent {resent}")
        body = {"courseId": "x-knit", "lessonId": "l-post", "timeSpent": 1, "completed": False,
                "eventId": f"brk-post-{rng.randrange(1 << 30)}",
                "occurredAt": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
        post = _post(stack, "brk-000", body)
        if post.startswith(("200", "202")):  # in Kafka: it counts, so the reference has it
            producer.sent["brk-000"].append(
                {**body, "type": "lesson_progress", "studentId": "brk-000"}
            )
        row.notes.append(f"POST progress/update after restart: {post}")
        return finish(row, stack, producer)
    finally:
        stack.stop()


def fault_outage(work: Path, rng: random.Random, seconds: float = 30) -> Row:
    row = Row(f"ClickHouse down {seconds:.0f} s")
    hist = histories(rng, "out", 40)
    before = shuffled_stream(rng, {s: e[: len(e) // 2] for s, e in hist.items()})
    during = shuffled_stream(rng, {s: e[len(e) // 2 :] for s, e in hist.items()})
    stack = FaultStack(work).start()
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        for event in before:
            producer.send(event)
        producer.flush()
        stack.clickhouse_down(True)
        started = time.monotonic()
        statuses: dict[str, set[int]] = {"readyz": set(), "realtime": set(), "statistics": set()}
        with Streamer(producer, during, rate=len(during) / (seconds - 5)):
            while time.monotonic() - started < seconds:
                statuses["readyz"].add(_status(f"{stack.base_url}/readyz"))
                for name in ("realtime", "statistics"):
                    answer = stack.get(f"/api/dashboard/{name}", "out-000")
                    statuses[name].add(answer.status_code)
                time.sleep(2)
        failing = stack.metric_sum("eduknit_sink_failing")
        stack.clickhouse_down(False)
        caught_up = time.monotonic()
        wait_match(stack, producer.sent, 240)
        row.notes.append(
            "during: " + ", ".join(f"{k} {sorted(v)}" for k, v in statuses.items())
            + f", sink_failing={failing:.0f}; caught up {time.monotonic() - caught_up:.0f} s after"
        )  # fmt: skip
        if any(v != {503} for v in statuses.values()):
            row.result = "FAIL-CHECK"
        return finish(row, stack, producer)
    finally:
        stack.clickhouse_down(False)
        stack.stop()


def fault_duplicates(work: Path, rng: random.Random) -> Row:
    row = Row("duplicates (now, after restart, 1-300 days old)")
    hist = histories(rng, "dup", 40, days=60)
    now = dt.datetime.now(dt.UTC)
    for student, events in hist.items():
        for j in range(3):
            events.append({
                "eventId": f"{student}-old-{j}", "type": "quiz_completed", "studentId": student,
                "courseId": "x-knit", "quizId": f"q-old-{j}", "score": 30 + 20 * j,
                "timeSpent": 5, "occurredAt": (now - dt.timedelta(days=100 * j + 99)).isoformat(),
            })  # fmt: skip
    stack = FaultStack(work, EDUKNIT_RECENT_IDS_DAYS="1").start()
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        for event in shuffled_stream(rng, hist):
            producer.send(event)
        producer.flush()
        wait_match(stack, producer.sent, 180)
        producer.resend_all(rng)
        producer.flush()
        stack.kill_worker()
        resent = producer.resend_all(rng)
        producer.flush()
        # Every re-sent event is a duplicate for the restarted worker: wait until it has
        # dropped them all (the dashboards match before and after, so they cannot tell).
        deadline = time.monotonic() + 120
        dropped = 0.0
        while time.monotonic() < deadline:
            dropped = stack.metric_sum("eduknit_events_duplicate_total")
            if dropped >= resent:
                break
            time.sleep(1)
        row.notes.append(
            f"worker dropped {dropped:.0f} duplicates since its restart ({resent} re-sent)"
        )
        if dropped < resent:
            row.result = "FAIL-CHECK"
        return finish(row, stack, producer)
    finally:
        stack.stop()


def fault_api_kill(work: Path, rng: random.Random, kills: int = 6) -> Row:
    row = Row(f"API killed during POST x{kills}")
    stack = FaultStack(work, EDUKNIT_APPLY_WAIT_SECONDS="30").start()
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        producer.flush()
        student = f"api-{uuid.uuid4().hex[:6]}"
        stamp = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        interrupted = retried_ok = 0
        for n in range(kills):
            body = {
                "eventId": f"{student}-p{n}", "courseId": "x-knit", "lessonId": f"l{n % 8}",
                "timeSpent": 2.5, "completed": n % 2 == 0,
                "occurredAt": (stamp + dt.timedelta(minutes=n)).isoformat(timespec="milliseconds"),
            }  # fmt: skip
            hold = n % 2 == 0  # every other one: writes held down, POST waits after producing
            if hold:  # (reads answer: a student's POST checks its claim in ClickHouse first)
                stack.clickhouse_down(True, writes_only=True)
            outcome: list[Any] = []
            thread = threading.Thread(target=_post_into, args=(outcome, stack, student, body))
            thread.start()
            time.sleep(rng.uniform(0.5, 1.5) if hold else rng.uniform(0.0, 0.1))
            stack.kill_worker(after_kill=lambda: stack.clickhouse_down(False))
            thread.join(60)
            interrupted += int(not (outcome and str(outcome[0]).startswith("200")))
            retry = _post(stack, student, body)
            retried_ok += retry.startswith("200")
            producer.sent.setdefault(student, []).append({
                "eventId": body["eventId"], "type": "lesson_progress", "studentId": student,
                "courseId": "x-knit", "lessonId": body["lessonId"], "timeSpent": 2.5,
                "completed": body["completed"], "occurredAt": body["occurredAt"],
            })  # fmt: skip
            producer.messages += 2
        row.notes.append(f"{interrupted} requests cut off, {retried_ok}/{kills} retries 200")
        if retried_ok != kills:
            row.result = "FAIL-CHECK"
        return finish(row, stack, producer)
    finally:
        stack.clickhouse_down(False)
        stack.stop()


def fault_load(work: Path, rng: random.Random, readers: int = 200, seconds: int = 60) -> Row:
    row = Row(f"{readers} readers x {seconds} s while ingesting")
    hist = histories(rng, "load", 200, days=30)
    first = shuffled_stream(rng, {s: e[: len(e) // 2] for s, e in hist.items()})
    rest = shuffled_stream(rng, {s: e[len(e) // 2 :] for s, e in hist.items()})
    stack = FaultStack(work).start()
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        for event in first:
            producer.send(event)
        producer.flush()
        tokens = work / "tokens.txt"
        tokens.write_text("\n".join(stack.token(s, ttl=3600) for s in hist) + "\n")
        with Streamer(producer, rest, rate=len(rest) / (seconds + 5)):
            out = subprocess.run(
                [sys.executable, "-m", "bench.http_load", "--url",
                 f"{stack.base_url}/api/dashboard/realtime", "--tokens-file", str(tokens),
                 "--concurrency", str(readers), "--duration", str(seconds), "--warmup", "2",
                 "--client", "aiohttp", "--label", "chaos-readers"],
                cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120,
            )  # fmt: skip
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH-RESULT ")), "")
        if not line:
            row.notes.append(f"load tool failed: {out.stderr[-300:]}")
            row.result = "FAIL-CHECK"
            return finish(row, stack, producer)
        result = json.loads(line.removeprefix("BENCH-RESULT "))
        row.notes.append(
            f"{result['requests']} reads, {result['errors']} errors, {result['rps']} req/s, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
            f"ingest {len(rest) / (seconds + 5):.0f} ev/s"
        )  # fmt: skip
        if result["errors"]:
            row.result = "FAIL-CHECK"
        return finish(row, stack, producer)
    finally:
        stack.stop()


def fault_memory(work: Path, rng: random.Random, waves: int = 6, per_wave: int = 4000) -> Row:
    row = Row(f"memory: {waves * per_wave} students, cache 2000")
    stack = FaultStack(work, EDUKNIT_STATE_CACHE_STUDENTS="2000").start()
    samples: list[tuple[float, int]] = []
    try:
        producer = RetryingProducer(stack.bootstrap)
        send_catalog(producer)
        pid = stack.serve_pid()
        started = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        for wave in range(waves):
            for i in range(per_wave):
                student = f"mem-{wave}-{i:05d}"
                for j in range(5):
                    at = now - dt.timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 1400))
                    producer.send({
                        "eventId": f"{student}-{j}", "type": "lesson_progress",
                        "studentId": student, "courseId": rng.choice(COURSES),
                        "lessonId": f"l{rng.randint(1, 8)}", "completed": rng.random() < 0.5,
                        "timeSpent": rng.randint(0, 30),
                        "occurredAt": at.isoformat(timespec="seconds"),
                    })  # fmt: skip
            producer.flush()
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                samples.append((time.monotonic() - started, rss_kib(pid)))
                time.sleep(2.5)
        mib = [kib / 1024 for _, kib in samples]
        half = len(mib) // 2
        first_peak, second_peak = max(mib[:half]), max(mib[half:])
        row.notes.append(
            f"worker RSS MiB: start {mib[0]:.0f}, peak 1st half {first_peak:.0f}, "
            f"peak 2nd half {second_peak:.0f}, end {mib[-1]:.0f} over {samples[-1][0]:.0f} s"
        )
        if second_peak > first_peak * 1.15:
            row.result = "FAIL-CHECK"
            row.notes.append("memory kept growing")
        sample = rng.sample(sorted(producer.sent), 60)
        return finish(row, stack, producer, sample=sample)
    finally:
        stack.stop()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def _post_into(out: list[Any], stack: FaultStack, student: str, body: dict[str, Any]) -> None:
    out.append(_post(stack, student, body))


def _post(stack: FaultStack, student: str, body: dict[str, Any]) -> str:
    try:
        answer = httpx.post(
            f"{stack.base_url}/api/dashboard/progress/update", json=body, timeout=60,
            headers={"Authorization": f"Bearer {stack.token(student)}"},
        )  # fmt: skip
        return f"{answer.status_code} {answer.text[:80]}"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"


FAULTS: dict[str, Callable[[Path, random.Random], Row]] = {
    "outage": fault_outage,
    "broker": fault_broker,
    "duplicates": fault_duplicates,
    "api-kill": fault_api_kill,
    "load": fault_load,
    "memory": fault_memory,
    "sigkill": fault_sigkill,
}


def table(rows: list[Row]) -> str:
    lines = [
        "| fault | events sent | events counted | duplicates counted | lost | result | time "
        "| notes |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        notes = "; ".join(r.notes).replace("|", "/")
        lines.append(
            f"| {r.fault} | {r.sent} | {r.counted} | {r.duplicates} | {r.lost} | {r.result} "
            f"| {r.seconds:.0f} s | {notes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FAULTS), help="comma-separated faults")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the stacks on SIGTERM too
    with tempfile.TemporaryDirectory(prefix="eduknit-chaos-") as tmp:
        for name in args.only.split(","):
            rng = random.Random(f"{args.seed}-{name}")
            work = Path(tmp) / name
            started = time.monotonic()
            print(f"--- {name} ...", flush=True)
            try:
                row = FAULTS[name](work, rng)
            except Exception as exc:
                traceback.print_exc()
                row = Row(name, notes=[f"error: {exc!s:.300}"])
            row.seconds = time.monotonic() - started
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            if args.keep:
                kept = ROOT / "data" / "chaos" / name
                kept.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-r", str(work), str(kept)], check=False)
    text = table(rows)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if all(r.result == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
