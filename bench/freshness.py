"""Freshness benchmark: producing an event → seeing it in /realtime, under 1k events/s.

``python -m bench.freshness --seconds 30 --rate 1000`` starts an embedded broker
and the whole pipeline as ``make run`` does (``python -m eduknit.cli run`` with
``KAFKA_BOOTSTRAP_SERVERS`` set to that broker, so the run is on free ports and a
temp data dir), then for ``--seconds``:

- a thread produces ``--rate`` background events/s (lesson progress,
  enrollments and quizzes of ``--students`` students, ``occurredAt`` = now);
- ``--probes`` times a second a probe event (a completed lesson of one of 50
  probe students) is produced; the /realtime of the students whose probe is not
  seen yet is polled in turn, ``POLL_RATE`` requests/s in all (10 open
  dashboards refreshing every second; the API shares its process with the
  worker, so polling harder slows what it measures: at 50 polls/s p50 went from
  0.6 s to 1.5 s), until the event is in ``recentActivity``: freshness =
  time of the answer that shows it − time of the produce call (resolution: the
  poll interval of one probe, outstanding probes / POLL_RATE);
- one client after another POSTs /api/dashboard/progress/update (4 per second)
  and times the round trip (200 = applied within the wait, 202 = not yet).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import PYTHON, Child, Metric, ProcSampler, pct, say, table, wait_healthy
from bench.kafka_io import PARTITIONS, produce_catalog, producer, start_broker
from infra.broker import free_port
from infra.tokens import make_token
from schemas import events as events_schema
from testkit.workload import make_catalog

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
POLL_RATE = 10.0  # /realtime polls per second in all (10 open dashboards refreshing 1/s)
PROBE_STUDENTS = 50
POST_INTERVAL = 0.25
SEEN_TIMEOUT = 10.0


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def background(
    bootstrap: str, rate: float, seconds: float, students: int, courses: list[str],
    stop: threading.Event, sent: list[int],
) -> None:  # fmt: skip
    """Produce ``rate`` events/s in 10 ms ticks until ``seconds`` passed."""
    p = producer(bootstrap, **{"linger.ms": 1})
    rng = random.Random(5)
    serial = itertools.count()
    started = time.perf_counter()
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    while not stop.is_set() and time.perf_counter() - started < seconds:
        owed += per_tick
        while owed >= 1:
            owed -= 1
            sid = f"bg{rng.randrange(students):06d}"
            n = next(serial)
            event: dict[str, Any] = {"eventId": f"bg-{n}", "studentId": sid,
                                     "courseId": rng.choice(courses), "occurredAt": _now_iso(),
                                     "timezone": "Europe/Paris"}  # fmt: skip
            roll = rng.random()
            if roll < 0.1:
                event["type"] = "enrolled"
            elif roll < 0.85:
                event.update(type="lesson_progress", lessonId=f"lesson-{n % 20 + 1:02d}",
                             completed=rng.random() < 0.6, timeSpent=10)  # fmt: skip
            else:
                event.update(type="quiz_completed", quizId=f"quiz-{n % 5}",
                             score=float(rng.randint(40, 100)), timeSpent=5)  # fmt: skip
            p.produce(events_schema.TOPIC, key=sid.encode(), value=orjson.dumps(event))
            sent[0] += 1
        p.poll(0)
        time.sleep(max(0.0, started + (sent[0] / rate) - time.perf_counter()))
    p.flush(30)


async def probe_loop(
    base: str, bootstrap: str, seconds: float, probes_per_s: float, courses: list[str],
    latencies: list[float], missing: list[str], poll_rate: float = POLL_RATE,
) -> None:  # fmt: skip
    """Send probe events; poll their students' /realtime, ``poll_rate`` requests/s in all."""
    p = producer(bootstrap, **{"linger.ms": 0})
    tokens = [make_token(SECRET, f"probe{i:03d}", ttl_seconds=3600) for i in range(PROBE_STUDENTS)]
    outstanding: list[tuple[str, str, float]] = []  # (token, event id, sent at)
    sending = True

    async def send() -> None:
        nonlocal sending
        started = time.perf_counter()
        for n in itertools.count():
            at = started + n / probes_per_s
            if at - started >= seconds:
                break
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            i = n % PROBE_STUDENTS
            sid, event_id = f"probe{i:03d}", f"probe-{n}"
            event = {"eventId": event_id, "type": "lesson_progress", "studentId": sid,
                     "courseId": courses[i % len(courses)], "lessonId": f"lesson-{n % 30 + 1}",
                     "completed": True, "timeSpent": 5, "occurredAt": _now_iso()}  # fmt: skip
            p.produce(events_schema.TOPIC, key=sid.encode(), value=orjson.dumps(event))
            p.poll(0)
            outstanding.append((tokens[i], event_id, time.time()))
        p.flush(10)
        sending = False

    async def check(http: httpx.AsyncClient, probe: tuple[str, str, float]) -> None:
        token, event_id, sent_at = probe
        try:
            response = await http.get(
                "/api/dashboard/realtime", headers={"Authorization": f"Bearer {token}"}
            )
            seen_at = time.time()
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return
        if probe not in outstanding:
            return
        if any(a.get("eventId") == event_id for a in body.get("recentActivity", [])):
            outstanding.remove(probe)
            latencies.append(seen_at - sent_at)
        elif seen_at - sent_at > SEEN_TIMEOUT:
            outstanding.remove(probe)
            missing.append(event_id)

    async def poll(http: httpx.AsyncClient) -> None:
        turn = 0
        in_flight: set[asyncio.Task[None]] = set()
        while sending or outstanding:
            if outstanding and len(in_flight) < 8:
                probe = outstanding[turn % len(outstanding)]
                turn += 1
                task = asyncio.create_task(check(http, probe))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await asyncio.sleep(1 / poll_rate)
        if in_flight:
            await asyncio.gather(*in_flight)

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await asyncio.gather(send(), poll(http))


async def post_loop(
    base: str, seconds: float, courses: list[str], latencies: list[float], statuses: list[int]
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        started = time.perf_counter()
        for n in itertools.count():
            if time.perf_counter() - started >= seconds:
                break
            sid = f"poster{n % 20:02d}"
            headers = {"Authorization": f"Bearer {make_token(SECRET, sid, ttl_seconds=600)}"}
            body = {"courseId": courses[n % len(courses)], "lessonId": f"lesson-{n % 30 + 1}",
                    "timeSpent": 7.5, "completed": n % 2 == 0}  # fmt: skip
            t0 = time.perf_counter()
            try:
                response = await http.post(
                    "/api/dashboard/progress/update", headers=headers, json=body
                )
                statuses.append(response.status_code)
                latencies.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                statuses.append(0)
            await asyncio.sleep(max(0.0, POST_INTERVAL - (time.perf_counter() - t0)))


def wait_ready(stack: Child, base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    wait_healthy(base, stack, timeout, path="/readyz")
    stack.wait_for("[^Worker]: Ready", max(1.0, deadline - time.monotonic()))


def freshness(
    workdir: Path, *, seconds: float = 30, rate: float = 1000, students: int = 10_000,
    probes_per_s: float = 2, poll_rate: float = POLL_RATE,
) -> tuple[list[Metric], dict[str, Any]]:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(workdir / "broker.log")
    catalog = make_catalog(50)
    courses = [c["courseId"] for c in catalog]
    port = free_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "EDUKNIT_API_PORT": str(port),
           "EDUKNIT_DATA_DIR": str(workdir / "data"), "EDUKNIT_JWT_SECRET": SECRET,
           "EDUKNIT_PARTITIONS": str(PARTITIONS)}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    raw: dict[str, Any] = {"seconds": seconds, "rate": rate, "students": students,
                           "poll_rate": poll_rate}  # fmt: skip
    stack = None
    try:
        produce_catalog(broker.bootstrap_servers, catalog)
        stack = Child("stack", [PYTHON, "-m", "eduknit.cli", "run"], workdir / "stack.log", env)
        say("freshness: starting the stack (eduknit.cli run)")
        wait_ready(stack, base)
        sampler = ProcSampler(stack.pid, interval=0.5).start()
        say(f"freshness: {rate:g} events/s for {seconds:g} s, probing /realtime and POSTing")
        stop, sent = threading.Event(), [0]
        thread = threading.Thread(
            target=background,
            args=(broker.bootstrap_servers, rate, seconds, students, courses, stop, sent),
        )
        seen: list[float] = []
        missing: list[str] = []
        post_lat: list[float] = []
        statuses: list[int] = []
        started = time.perf_counter()
        thread.start()

        async def both() -> None:
            await asyncio.gather(
                probe_loop(base, broker.bootstrap_servers, seconds, probes_per_s, courses,
                           seen, missing, poll_rate),
                post_loop(base, seconds, courses, post_lat, statuses),
            )  # fmt: skip

        try:
            asyncio.run(both())
        finally:
            stop.set()
            thread.join(60)
            sampler.stop()
        raw.update(
            sent=sent[0], produce_seconds=time.perf_counter() - started, seen=seen,
            missing=missing, post=post_lat, post_statuses=statuses,
            stack_peak_rss_mib=sampler.peak_rss_mib,
        )  # fmt: skip
    finally:
        if stack is not None:
            stack.stop()
        broker.stop()
    return freshness_metrics(raw), raw


def freshness_metrics(raw: dict[str, Any]) -> list[Metric]:
    seen, post = raw["seen"], raw["post"]
    achieved = raw["sent"] / raw["seconds"]
    ok200 = sum(1 for s in raw["post_statuses"] if s == 200)
    p99 = pct(seen, 0.99)
    post_p99 = pct(post, 0.99)
    return [
        Metric("freshness: background load", f"{achieved:,.0f} events/s for {raw['seconds']:g} s",
               f"{raw['rate']:g} events/s", None),
        Metric(f"freshness: produce → visible in /realtime ({raw['poll_rate']:g} polls/s)",
               f"p50 {pct(seen, 0.5) * 1000:.0f} / p99 {p99 * 1000:.0f} ms "
               f"({len(seen)} probes, {len(raw['missing'])} unseen)", "p99 ≤ 1 s",
               p99 <= 1.0 and not raw["missing"]),
        Metric("freshness: POST progress/update round trip",
               f"p50 {pct(post, 0.5) * 1000:.0f} / p99 {post_p99 * 1000:.0f} ms "
               f"({ok200}/{len(raw['post_statuses'])} applied: 200)", "p99 ≤ 1 s",
               post_p99 <= 1.0 and ok200 == len(raw["post_statuses"])),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--students", type=int, default=10_000)
    parser.add_argument("--probes", type=float, default=2, help="probe events per second")
    parser.add_argument("--poll-rate", type=float, default=POLL_RATE, help="/realtime polls/s")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/freshness"))
    args = parser.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    metrics, _ = freshness(args.workdir, seconds=args.seconds, rate=args.rate,
                           students=args.students, probes_per_s=args.probes,
                           poll_rate=args.poll_rate)  # fmt: skip
    print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
