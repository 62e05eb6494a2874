"""Benchmark of the operations commands: check --all and resync --all, and ingest meanwhile.

``python -m bench.operations --students 100000 --events 10000000 [--data DIR]``:

1. fills an embedded engine with ``bench.load_reads`` (events and aggregates
   straight with SQL: loading 10M events through the worker would take ~20 min);
2. ``eduknit check --all`` with nothing running (the command opens the engine);
3. ``eduknit resync --all`` with nothing running (it rebuilds in the engine);
4. ``eduknit check --all`` again (clean after the resync);
5. starts ``eduknit run`` on that data directory, streams new events of the
   loaded students at ``--rate`` for ``--window`` seconds and reads the worker's
   counted events/s from ``/metrics``; runs ``eduknit resync --all`` through
   Kafka and the worker with no other traffic, then again while the events
   stream (its time and students/s, and the worker's counted events/s);
6. ``eduknit check --all`` through the running API's admin route.

Every command runs as a user runs it (a separate process); times are wall
clock. Prints a Markdown table and ``BENCH-RESULT {json}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer

from bench.common import ROOT, Metric, say, table
from testkit.stack import SECRET, Stack

COURSES = 50  # bench.load_reads' default catalog


def eduknit(env: dict[str, str], *args: str, timeout: float = 3600) -> tuple[float, str]:
    """Run ``eduknit ARGS``; (seconds, stdout)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "eduknit.cli", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"eduknit {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    say(f"eduknit {' '.join(args)}: {seconds:.1f} s\n{done.stdout.strip()}")
    return seconds, done.stdout


def students_done(out: str, default: int) -> int:
    """The students a command's summary line says it checked or rebuilt (more than were
    loaded when the data directory holds students of its own)."""
    match = re.search(r"(?:checked|of) ([\d,]+) students", out)
    return int(match.group(1).replace(",", "")) if match else default


def rate_of(seconds: float, out: str, students: int) -> str:
    done = students_done(out, students)
    return f"{seconds:,.0f} s, {done:,} students, {done / seconds:,.0f} students/s"


def counted(stack: Stack) -> float:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    match = re.search(r"^eduknit_events_counted_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


class Traffic:
    """Live lesson completions at ``rate`` events/s from a thread, each for a random one of
    the loaded students (``bench.load_reads`` ids, in the first of their courses): what a
    school's traffic is while an operator resyncs, the same students included."""

    def __init__(self, bootstrap: str, rate: float, tag: str, students: int) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        # new event ids in every run: a run on the data of an earlier one (--live-only)
        # would otherwise send events already counted, which the worker only drops
        self.rate, self.tag, self.students = rate, f"{tag}-{uuid.uuid4().hex[:8]}", students
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _event(self, rng: random.Random, now: str) -> tuple[str, dict[str, Any]]:
        number = rng.randrange(self.students)
        student = f"s{number:07d}"
        return student, {
            "eventId": f"{self.tag}-{self.sent}", "type": "lesson_progress",
            "studentId": student, "courseId": f"course-{number * 7 % COURSES + 1:03d}",
            "lessonId": f"{self.tag}-lesson-{self.sent}", "completed": True, "timeSpent": 5,
            "occurredAt": now,
        }  # fmt: skip

    def _run(self) -> None:
        rng = random.Random(self.tag)
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            student, event = self._event(rng, now)
            while True:
                try:
                    self.producer.produce("learning-events", key=student.encode(),
                                          value=orjson.dumps(event))  # fmt: skip
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
            self.sent += 1
            next_at += 1 / self.rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(30)


def ingest_rate(stack: Stack, seconds: float) -> float:
    """The worker's counted events/s over ``seconds``."""
    before, started = counted(stack), time.monotonic()
    time.sleep(seconds)
    return (counted(stack) - before) / (time.monotonic() - started)


def run(
    students: int, events: int, data: Path, rate: float, window: float, live_only: bool = False
) -> list[Metric]:
    results: list[Metric] = []
    size = f"{students:,} students / {events:,} events"
    if not live_only:
        say(f"loading {size} into {data}")
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "bench.load_reads", str(data), "--students", str(students),
             "--events", str(events)], cwd=ROOT, check=True, capture_output=True, timeout=7200,
        )  # fmt: skip
        results.append(Metric(f"load ({size}, SQL)", f"{time.monotonic() - started:,.0f} s"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDUKNIT_DATA_DIR": str(data),
           "EDUKNIT_JWT_SECRET": SECRET, "EDUKNIT_KAFKA_PORT": "1",
           "EDUKNIT_API_PORT": "1"}  # fmt: skip
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("CLICKHOUSE_URL", None)
    target = "< 600 s"
    if not live_only:
        seconds, out = eduknit(env, "check", "--all")
        results.append(Metric("check --all, nothing running (reads the engine)",
                              rate_of(seconds, out, students), target, seconds < 600))  # fmt: skip
        seconds, out = eduknit(env, "resync", "--all")
        results.append(Metric("resync --all, nothing running (rebuilds in the engine)",
                              rate_of(seconds, out, students), target, seconds < 600))  # fmt: skip
        seconds, out = eduknit(env, "check", "--all")
        results.append(Metric("check --all after it", f"{seconds:,.0f} s; " + out.splitlines()[-1]))

    stack = Stack(data).start(timeout=300)
    try:
        live = {**env, "EDUKNIT_KAFKA_PORT": str(stack.kafka_port),
                "EDUKNIT_API_PORT": str(stack.api_port)}  # fmt: skip
        with Traffic(stack.bootstrap, rate, "quiet", students):
            time.sleep(5)
            quiet = ingest_rate(stack, window)
        results.append(
            Metric(f"worker ingest, {rate:,.0f} events/s offered", f"{quiet:,.0f} events/s")
        )
        seconds, out = eduknit(live, "resync", "--all")
        results.append(Metric("resync --all through Kafka and the running worker, no traffic",
                              rate_of(seconds, out, students), target, seconds < 600))  # fmt: skip
        outcome: dict[str, Any] = {}

        def resync() -> None:
            outcome["seconds"], outcome["out"] = eduknit(live, "resync", "--all")

        with Traffic(stack.bootstrap, rate, "busy", students):
            thread = threading.Thread(target=resync)
            before, started = counted(stack), time.monotonic()
            thread.start()
            time.sleep(5)
            during = ingest_rate(stack, window)
            thread.join()
            whole = (counted(stack) - before) / (time.monotonic() - started)
        seconds = outcome["seconds"]
        results.append(Metric(f"resync --all through the running worker, {rate:,.0f} events/s live",
                              rate_of(seconds, outcome["out"], students), target,
                              seconds < 600))  # fmt: skip
        results.append(Metric(f"worker ingest while it runs, {rate:,.0f} events/s offered",
                              f"{during:,.0f} events/s in a {window:,.0f} s window, "
                              f"{whole:,.0f} events/s over the whole resync"))  # fmt: skip
        seconds, out = eduknit(live, "check", "--all")
        results.append(Metric("check --all through the running API",
                              rate_of(seconds, out, students) + "; " + out.splitlines()[-1],
                              target, seconds < 600))  # fmt: skip
    finally:
        stack.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, help="a new data directory (default: a temporary one)")
    parser.add_argument("--rate", type=float, default=2000, help="live events/s offered")
    parser.add_argument("--window", type=float, default=30, help="seconds an ingest rate is read")
    parser.add_argument(
        "--live-only", action="store_true",
        help="only the live part (step 5-6), on --data loaded by an earlier run",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        data = (args.data or Path(tmp) / "data").resolve()
        results = run(args.students, args.events, data, args.rate, args.window, args.live_only)
    print(table(results))
    print("BENCH-RESULT " + json.dumps([m.as_dict() for m in results]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
