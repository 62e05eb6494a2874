"""Live-stream benchmark: produce → pushed to an open stream, and 1,000 streams on one API.

``python -m bench.stream_push [--part push,fanout]`` starts an embedded broker and
the whole pipeline as ``make run`` does (``eduknit.cli run``, free loopback
ports, a temp data dir; stopped by PID), once per part:

- ``push``: for ``--seconds`` a thread produces ``--rate`` background events/s of
  other students (``bench.freshness.background``) while 50 probe students each
  have an open ``/api/dashboard/stream``; ``--probes`` times a second a probe
  event (a completed lesson) is produced for one of them and timed until an event
  carrying it arrives on that student's stream (produce → pushed). In the same
  run ``bench.freshness.probe_loop`` measures the poll-based freshness (produce →
  visible in ``/realtime``, 10 polls/s in all) on 50 other probe students.
- ``fanout``: 1,000 students each get one open stream; ``--changing`` of them
  change every second (one completed lesson each, round-robin), first for
  ``--seconds`` without streams (the baseline), then with the 1,000 streams open.
  During both windows ``bench.http_load`` (its own process) asks ``/realtime`` of
  these students at ``--realtime-rate`` requests/s (open loop). Reported: the API
  process's CPU and RSS (the ``serve`` child: worker + API, as ``make run`` runs
  them) in both windows, RSS per stream, push latency, ``/realtime`` p50/p99,
  reads per change (one per changed student, whatever its number of streams) and
  the open-streams gauge after the streams are dropped.

The streams are held by this process on raw sockets (a minimal HTTP/1.1 chunked
and ``text/event-stream`` reader), so the client costs little CPU beside the
server on a 2-core machine. Latencies are wall-clock times of this process:
produce call → the event's bytes read.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    PYTHON,
    ROOT,
    Child,
    Metric,
    ProcSampler,
    pct,
    proc_rss_mib,
    say,
    table,
    wait_healthy,
)
from bench.freshness import SECRET, background, probe_loop, wait_ready
from bench.kafka_io import PARTITIONS, produce_catalog, producer, start_broker
from infra.broker import free_port
from infra.tokens import make_token
from schemas import events as events_schema
from testkit.harness import children, cmdline
from testkit.workload import make_catalog

PROBE_STUDENTS = 50
SEEN_TIMEOUT = 10.0
OnEvent = Callable[[str, bytes, float], None]


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lesson_event(student: str, event_id: str, course: str, n: int) -> bytes:
    return orjson.dumps({
        "eventId": event_id, "type": "lesson_progress", "studentId": student, "courseId": course,
        "lessonId": f"lesson-{n % 30 + 1}", "completed": True, "timeSpent": 5,
        "occurredAt": _now_iso(), "timezone": "Europe/Paris",
    })  # fmt: skip


# ------------------------------------------------------------------- the client
class Streams:
    """Open ``/api/dashboard/stream`` connections; each event's data goes to ``on_event``."""

    def __init__(self, port: int, on_event: OnEvent) -> None:
        self.port = port
        self.on_event = on_event
        self.tasks: list[asyncio.Task[None]] = []
        self.first = 0  # streams that received their first event
        self.failed: list[str] = []

    def open(self, student: str) -> None:
        self.tasks.append(asyncio.create_task(self._hold(student)))

    async def _hold(self, student: str) -> None:
        token = make_token(SECRET, student, ttl_seconds=3600)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            self.failed.append(f"{student}: {exc}")
            return
        try:
            writer.write(
                f"GET /api/dashboard/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.failed.append(f"{student}: {head[:80]!r}")
                return
            buffer = b""
            first = True
            while True:  # Transfer-Encoding: chunked
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    return
                buffer += (await reader.readexactly(size + 2))[:-2]
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    for line in frame.split(b"\n"):
                        if line.startswith(b"data: "):
                            if first:
                                self.first += 1
                                first = False
                            self.on_event(student, line[6:], time.time())
        except (OSError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


class Probes:
    """Events sent and not yet seen on their student's stream; the latencies seen."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, float]] = {}  # event id -> (student, sent at)
        self.latencies: list[float] = []
        self.events = 0

    def expect(self, student: str, event_id: str) -> None:
        self.sent[event_id] = (student, time.time())

    def on_event(self, student: str, data: bytes, received_at: float) -> None:
        self.events += 1
        for item in orjson.loads(data)["recentActivity"]:
            sent = self.sent.get(item["eventId"])
            if sent is not None and sent[0] == student:
                del self.sent[item["eventId"]]
                self.latencies.append(received_at - sent[1])

    def missing(self, older_than: float = SEEN_TIMEOUT) -> int:
        now = time.time()
        return sum(1 for _, at in self.sent.values() if now - at > older_than)


# -------------------------------------------------------------------- the stack
def start_stack(workdir: Path) -> tuple[Any, Child, str, int]:
    """Broker (with the catalog) and ``eduknit.cli run``; returns (broker, stack, base, port)."""
    broker = start_broker(workdir / "broker.log")
    port = free_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "EDUKNIT_API_PORT": str(port),
           "EDUKNIT_DATA_DIR": str(workdir / "data"), "EDUKNIT_JWT_SECRET": SECRET,
           "EDUKNIT_PARTITIONS": str(PARTITIONS)}  # fmt: skip
    try:
        produce_catalog(broker.bootstrap_servers, make_catalog(50))
        stack = Child("stack", [PYTHON, "-m", "eduknit.cli", "run"], workdir / "stack.log", env)
    except BaseException:
        broker.stop()
        raise
    base = f"http://127.0.0.1:{port}"
    say("starting the stack (eduknit.cli run)")
    try:
        wait_ready(stack, base)
    except BaseException:
        stack.stop()
        broker.stop()
        raise
    return broker, stack, base, port


def serve_pid(stack: Child) -> int:
    """The ``serve`` child of the supervisor: the process holding the worker and the API."""
    for pid in children(stack.pid):
        if "eduknit.cli serve" in cmdline(pid):
            return pid
    raise RuntimeError("no serve process under the supervisor")


def metric_value(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def push_histogram(base: str) -> dict[str, float]:
    """Cumulative counts of ``eduknit_api_stream_push_seconds`` by bucket (feed poll → handed)."""
    buckets: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("eduknit_api_stream_push_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    return buckets


# ------------------------------------------------------------------ part: push
def push_under_load(
    workdir: Path, *, seconds: float, rate: float, students: int, probes_per_s: float
) -> tuple[list[Metric], dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker, stack, base, port = start_stack(workdir)
    courses = [c["courseId"] for c in make_catalog(50)]
    raw: dict[str, Any] = {"seconds": seconds, "rate": rate, "probes_per_s": probes_per_s}
    try:
        stop, sent = threading.Event(), [0]
        thread = threading.Thread(
            target=background,
            args=(broker.bootstrap_servers, rate, seconds, students, courses, stop, sent),
        )
        polled: list[float] = []
        unseen: list[str] = []
        probes = Probes()

        async def run() -> None:
            streams = Streams(port, probes.on_event)
            for i in range(PROBE_STUDENTS):
                streams.open(f"sprobe{i:03d}")
            while streams.first + len(streams.failed) < PROBE_STUDENTS:
                await asyncio.sleep(0.05)
            assert not streams.failed, streams.failed[:3]
            say(f"push: {rate:g} background events/s for {seconds:g} s; stream and poll probes")
            thread.start()
            await asyncio.gather(
                probe_loop(base, broker.bootstrap_servers, seconds, probes_per_s, courses,
                           polled, unseen),
                stream_probes(broker.bootstrap_servers, seconds, probes_per_s, courses, probes),
            )  # fmt: skip
            await streams.close()

        try:
            asyncio.run(run())
        finally:
            stop.set()
            if thread.is_alive():
                thread.join(60)
        raw.update(sent=sent[0], pushed=probes.latencies, push_missing=len(probes.sent),
                   polled=polled, poll_missing=len(unseen),
                   push_histogram=push_histogram(base))  # fmt: skip
    finally:
        stack.stop()
        broker.stop()
    return push_metrics(raw), raw


async def stream_probes(
    bootstrap: str, seconds: float, per_s: float, courses: list[str], probes: Probes
) -> None:
    """Probe events for the streamed probe students; waits until each is seen (or 10 s)."""
    p = producer(bootstrap, **{"linger.ms": 0})
    started = time.perf_counter()
    for n in itertools.count():
        at = started + n / per_s
        if at - started >= seconds:
            break
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        student = f"sprobe{n % PROBE_STUDENTS:03d}"
        event_id = f"sprobe-{n}"
        p.produce(events_schema.TOPIC, key=student.encode(),
                  value=lesson_event(student, event_id, courses[n % len(courses)], n))  # fmt: skip
        p.poll(0)
        probes.expect(student, event_id)
    p.flush(10)
    deadline = time.time() + SEEN_TIMEOUT
    while probes.sent and time.time() < deadline:
        await asyncio.sleep(0.05)


def push_metrics(raw: dict[str, Any]) -> list[Metric]:
    pushed, polled = raw["pushed"], raw["polled"]
    hist = raw["push_histogram"]
    total = hist.get("+Inf", 0.0)
    within = " / ".join(
        f"≤ {int(float(bound) * 1000)} ms: {hist.get(bound, 0.0) / total if total else 0:.0%}"
        for bound in ("0.05", "0.1", "0.25")
    )
    return [
        Metric("push: background load", f"{raw['sent'] / raw['seconds']:,.0f} events/s of other "
               f"students for {raw['seconds']:g} s", f"{raw['rate']:g} events/s", None),
        Metric("push: produce → event on the open stream",
               f"p50 {pct(pushed, 0.5) * 1000:.0f} / p99 {pct(pushed, 0.99) * 1000:.0f} ms "
               f"({len(pushed)} probes, {raw['push_missing']} unseen)", "p99 ≤ 1 s",
               pct(pushed, 0.99) <= 1.0 and not raw["push_missing"]),
        Metric("push: produce → visible in /realtime (10 polls/s, same run)",
               f"p50 {pct(polled, 0.5) * 1000:.0f} / p99 {pct(polled, 0.99) * 1000:.0f} ms "
               f"({len(polled)} probes, {raw['poll_missing']} unseen)", "p99 ≤ 1 s",
               pct(polled, 0.99) <= 1.0 and not raw["poll_missing"]),
        Metric("push: feed poll that saw the change → handed to the streams",
               f"{within} ({total:.0f} changes)", "", None),
    ]  # fmt: skip


# ---------------------------------------------------------------- part: fanout
def fanout(
    workdir: Path, *, streams: int, changing: int, seconds: float, realtime_rate: float
) -> tuple[list[Metric], dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker, stack, base, port = start_stack(workdir)
    courses = [c["courseId"] for c in make_catalog(50)]
    names = [f"fan{i:04d}" for i in range(streams)]
    tokens = workdir / "tokens.txt"
    tokens.write_text("\n".join(make_token(SECRET, s, ttl_seconds=7200) for s in names))
    raw: dict[str, Any] = {"streams": streams, "changing": changing, "seconds": seconds,
                           "realtime_rate": realtime_rate}  # fmt: skip
    try:
        sampler = ProcSampler(serve_pid(stack), interval=0.25).start()
        seed_students(broker.bootstrap_servers, base, names, courses)
        probes = Probes()

        async def run() -> None:
            held = Streams(port, probes.on_event)
            counter = itertools.count()
            say(f"fanout: warm-up (not reported), {changing} changes/s, 10 s")
            await window(base, broker.bootstrap_servers, names, courses, changing, 10,
                         realtime_rate, tokens, sampler, counter, None)  # fmt: skip
            say(f"fanout: baseline, {changing} changes/s, no stream, {seconds:g} s")
            raw["baseline"] = await window(base, broker.bootstrap_servers, names, courses,
                                           changing, seconds, realtime_rate, tokens, sampler,
                                           counter, None)  # fmt: skip
            rss_before = sampler.rss_median(time.time() - 5, time.time())
            say(f"fanout: opening {streams} streams")
            opened_at = time.perf_counter()
            for start in range(0, streams, 100):
                for student in names[start : start + 100]:
                    held.open(student)
                while held.first + len(held.failed) < min(start + 100, streams):
                    await asyncio.sleep(0.02)
            raw["open_seconds"] = time.perf_counter() - opened_at
            raw["open_failed"] = held.failed[:5]
            await asyncio.sleep(3)
            raw["rss_before"] = rss_before
            raw["rss_opened"] = sampler.rss_median(time.time() - 2.5, time.time())
            raw["gauge_open"] = metric_value(base, "eduknit_api_open_streams")
            reads = metric_value(base, "eduknit_api_stream_reads_total")
            say(f"fanout: {changing} changes/s with {streams} streams open, {seconds:g} s")
            raw["streamed"] = await window(base, broker.bootstrap_servers, names, courses,
                                           changing, seconds, realtime_rate, tokens, sampler,
                                           counter, probes)  # fmt: skip
            raw["reads"] = metric_value(base, "eduknit_api_stream_reads_total") - reads
            await held.close()
            await asyncio.sleep(2)
            raw["gauge_closed"] = metric_value(base, "eduknit_api_open_streams")

        asyncio.run(run())
        sampler.stop()
        raw.update(pushed=probes.latencies, push_missing=len(probes.sent),
                   stream_events=probes.events)  # fmt: skip
    finally:
        stack.stop()
        broker.stop()
    return fanout_metrics(raw), raw


def seed_students(bootstrap: str, base: str, names: list[str], courses: list[str]) -> None:
    """One enrollment per student, so each has a dashboard; wait until the last shows."""
    p = producer(bootstrap)
    for i, student in enumerate(names):
        event = {"eventId": f"{student}-enrolled", "type": "enrolled", "studentId": student,
                 "courseId": courses[i % len(courses)], "occurredAt": _now_iso()}  # fmt: skip
        p.produce(events_schema.TOPIC, key=student.encode(), value=orjson.dumps(event))
    p.flush(30)
    deadline = time.monotonic() + 60
    for student in names[-5:]:
        headers = {"Authorization": f"Bearer {make_token(SECRET, student, ttl_seconds=600)}"}
        while not httpx.get(f"{base}/api/dashboard/realtime", headers=headers).json()["courses"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the seeded students did not show")
            time.sleep(0.2)


async def window(
    base: str, bootstrap: str, names: list[str], courses: list[str], changing: int,
    seconds: float, realtime_rate: float, tokens: Path, sampler: ProcSampler,
    counter: itertools.count[int], probes: Probes | None,
) -> dict[str, Any]:  # fmt: skip
    """``changing`` changes/s for ``seconds``, /realtime asked at ``realtime_rate`` meanwhile."""
    load = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bench.http_load", "--url", f"{base}/api/dashboard/realtime",
        "--tokens-file", str(tokens), "--rate", str(realtime_rate), "--concurrency", "50",
        "--duration", str(seconds), "--warmup", "1", "--client", "aiohttp",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    p = producer(bootstrap, **{"linger.ms": 1})
    started, wall = time.perf_counter(), time.time()
    for n in range(int(seconds * changing)):
        await asyncio.sleep(max(0.0, started + n / changing - time.perf_counter()))
        k = next(counter)
        student = names[k % len(names)]
        event_id = f"chg-{k}"
        p.produce(events_schema.TOPIC, key=student.encode(),
                  value=lesson_event(student, event_id, courses[k % len(courses)], k))  # fmt: skip
        p.poll(0)
        if probes is not None:
            probes.expect(student, event_id)
    p.flush(10)
    ended = time.time()
    out, _ = await load.communicate()
    if probes is not None:
        deadline = time.time() + SEEN_TIMEOUT
        while probes.sent and time.time() < deadline:
            await asyncio.sleep(0.05)
    result = next(json.loads(line[len("BENCH-RESULT ") :]) for line in out.decode().splitlines()
                  if line.startswith("BENCH-RESULT "))  # fmt: skip
    cpu = sampler.cpu_between(wall + 1, ended)
    return {"cpu_share": cpu / max(ended - wall - 1, 1e-9), "rss": sampler.rss_median(wall, ended),
            "realtime": result}  # fmt: skip


def fanout_metrics(raw: dict[str, Any]) -> list[Metric]:
    base, streamed = raw["baseline"], raw["streamed"]
    pushed = raw["pushed"]
    per_stream = (raw["rss_opened"] - raw["rss_before"]) * 1024 / raw["streams"]
    rt = streamed["realtime"]
    changes = int(raw["changing"] * raw["seconds"])
    return [
        Metric(f"fanout: {raw['streams']:,} streams opened",
               f"in {raw['open_seconds']:.1f} s, gauge {raw['gauge_open']:.0f}, "
               f"{len(raw['open_failed'])} failed", "", not raw["open_failed"]),
        Metric(f"fanout: produce → pushed, {raw['changing']} of them changing per second",
               f"p50 {pct(pushed, 0.5) * 1000:.0f} / p99 {pct(pushed, 0.99) * 1000:.0f} ms "
               f"({len(pushed)} of {changes} changes seen, {raw['push_missing']} unseen)",
               "p99 ≤ 1 s", pct(pushed, 0.99) <= 1.0 and not raw["push_missing"]),
        Metric("fanout: /realtime meanwhile (open loop)",
               f"p50 {rt['p50_ms']:.1f} / p99 {rt['p99_ms']:.1f} ms at {rt['rps']:.0f} req/s "
               f"({rt['errors']} errors); without streams p50 {base['realtime']['p50_ms']:.1f} "
               f"/ p99 {base['realtime']['p99_ms']:.1f} ms", "p99 ≤ 50 ms",
               rt["p99_ms"] <= 50 and not rt["errors"]),
        Metric("fanout: API process CPU (worker + API, make run)",
               f"{streamed['cpu_share']:.0%} of a core with the streams, "
               f"{base['cpu_share']:.0%} without", "", None),
        Metric("fanout: API process RSS",
               f"{raw['rss_before']:.0f} MiB → {raw['rss_opened']:.0f} MiB with the streams "
               f"open ({per_stream:+.1f} KiB per stream); {streamed['rss']:.0f} MiB median "
               "while pushing", "", None),
        Metric("fanout: reads for the streams",
               f"{raw['reads']:.0f} for {changes} changes ({raw['stream_events']} events "
               f"received); gauge after the streams were dropped: {raw['gauge_closed']:.0f}",
               "≤ one per change, gauge 0",
               raw["reads"] <= changes and raw["gauge_closed"] == 0),
    ]  # fmt: skip


# ----------------------------------------------------------------- part: micro
def micro(workdir: Path, *, streams: int, changes: int, per_poll: int) -> list[Metric]:
    """CPU of the hub alone (no HTTP, no worker): per change, and per /realtime poll.

    In this process: an embedded ClickHouse with ``streams`` students written as the
    worker writes them, a ``StreamHub`` with one open stream per student (their first
    state read as the route reads it), and the real ``ChangeFeed``. Then ``changes``
    changes, ``per_poll`` per feed poll (50 changes/s at a 0.1 s poll = 5): each batch
    of rows is written (not timed), then one poll + the reads + the encodings + the
    hand-over to the streams are timed in CPU seconds of the whole process (the
    engine's threads included). Beside it: the CPU of one ``/realtime`` computed from
    ClickHouse (``realtime_answer``), what each open page would cost per poll if the
    pages polled instead.
    """
    import datetime as dt_

    from api.change_feed import ChangeFeed
    from api.observability import STREAM_READS
    from api.stream_hub import StreamHub
    from api.views import realtime_answer
    from infra.clickhouse import shared_client
    from schemas.events import parse_event
    from streams import rows
    from streams.sink import ClickHouseSink
    from streams.student_state import StudentState

    workdir.mkdir(parents=True, exist_ok=True)
    client = shared_client(f"chdb://{workdir / 'clickhouse'}")
    sink = ClickHouseSink(client)
    now = dt_.datetime.now(dt_.UTC)
    versions = itertools.count(time.time_ns())
    states = {f"m{i:05d}": StudentState(f"m{i:05d}") for i in range(streams)}
    courses = [c["courseId"] for c in make_catalog(50)]

    def change(student: str, n: int) -> list[Any]:
        event = lesson_event(student, f"{student}-{n}", courses[n % len(courses)], n)
        states[student].apply(parse_event(event, now=now, max_future=dt_.timedelta(days=1)))
        return rows.dashboard_row(states[student], now, next(versions))

    catalog = [[c["courseId"], c["title"], c["totalLessons"], 0, now, next(versions)]
               for c in make_catalog(50)]  # fmt: skip
    sink.write({"course_catalog": catalog})  # a course missing from it is read again each time
    sink.write({"student_dashboard": [change(s, 0) for s in states]})
    hub = StreamHub(client, None, lambda: dt_.datetime.now(dt_.UTC), stale_after=1e9)  # polled here
    feed = ChangeFeed(client, [hub])
    names = list(states)
    result: dict[str, float] = {}

    async def run() -> None:
        hub.start(asyncio.get_running_loop())
        feed.poll()
        opened = [hub.join(student, None) for student in names]
        cpu = time.process_time()
        for stream in opened:
            await hub.first_frame(stream, None)
        result["open"] = (time.process_time() - cpu) / streams
        spent, n = 0.0, 1
        reads = STREAM_READS._value.get()
        for start in range(0, changes, per_poll):
            batch = [names[(start + i) % streams] for i in range(per_poll)]
            sink.write({"student_dashboard": [change(s, n) for s in batch]})
            n += 1
            cpu = time.process_time()
            await asyncio.to_thread(feed.poll)
            while hub._reading or any(hub._topics[s].behind() for s in batch):
                await asyncio.sleep(0.002)  # not 0: a spinning loop would count as the hub's CPU
            spent += time.process_time() - cpu
        result["change"] = spent / changes
        result["reads"] = STREAM_READS._value.get() - reads
        cpu = time.process_time()
        for student in names[:changes]:
            realtime_answer(client, student, None, dt_.datetime.now(dt_.UTC))[0].model_dump_json()
        result["poll"] = (time.process_time() - cpu) / min(changes, streams)
        hub.stop()

    asyncio.run(run())
    per_second = 50 * result["change"]
    polling = streams * result["poll"]
    return [
        Metric("micro: CPU per change pushed (feed poll share, read, encode, hand-over)",
               f"{result['change'] * 1000:.2f} ms ({changes} changes, {per_poll} per poll, "
               f"{result['reads']:.0f} reads); 50 changes/s: {per_second:.0%} of a core",
               "", None),
        Metric("micro: CPU per stream opened (first state read)",
               f"{result['open'] * 1000:.2f} ms", "", None),
        Metric(f"micro: {streams:,} pages polling /realtime once a second instead",
               f"{result['poll'] * 1000:.2f} ms per poll: {polling:.0%} of a core "
               f"(streams: {per_second:.0%})", "", None),
    ]  # fmt: skip


# ---------------------------------------------------------------- part: memory
def memory(workdir: Path, *, streams: int) -> list[Metric]:
    """RSS per open stream on an API process alone (``bench.api_server``: no worker, an
    idle embedded engine, so its RSS holds still): before, with ``streams`` open, after."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {"EDUKNIT_DATA_DIR": str(workdir / "data"), "EDUKNIT_API_PORT": str(port),
           "EDUKNIT_JWT_SECRET": SECRET,
           "MALLOC_ARENA_MAX": "2"}  # fmt: skip  # as eduknit.cli sets it (infra.memory)
    server = Child("api", [PYTHON, "-m", "bench.api_server"], workdir / "api.log", env)
    base = f"http://127.0.0.1:{port}"
    rss: dict[str, float] = {}
    try:
        wait_healthy(base, server)

        async def run() -> None:
            held = Streams(port, lambda *_: None)
            for i in range(50):  # warm-up: first allocations of the stream path
                held.open(f"mem-warm{i}")
            while held.first + len(held.failed) < 50:
                await asyncio.sleep(0.05)
            await held.close()
            await asyncio.sleep(2)
            rss["before"] = proc_rss_mib(server.pid)
            for i in range(streams):
                held.open(f"mem{i:05d}")
            while held.first + len(held.failed) < streams:
                await asyncio.sleep(0.05)
            await asyncio.sleep(2)
            rss["open"] = proc_rss_mib(server.pid)
            rss["gauge"] = metric_value(base, "eduknit_api_open_streams")
            await held.close()
            await asyncio.sleep(2)
            rss["after"] = proc_rss_mib(server.pid)
            rss["gauge_after"] = metric_value(base, "eduknit_api_open_streams")

        asyncio.run(run())
    finally:
        server.stop()
    per_stream = (rss["open"] - rss["before"]) * 1024 / streams
    return [
        Metric(f"memory: API process alone, {streams:,} streams open (gauge {rss['gauge']:.0f})",
               f"RSS {rss['before']:.1f} → {rss['open']:.1f} MiB: {per_stream:.1f} KiB per "
               f"stream; {rss['after']:.1f} MiB after they closed (gauge "
               f"{rss['gauge_after']:.0f})", "", None),
    ]  # fmt: skip


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="push,fanout,micro,memory")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000, help="push: background events/s")
    parser.add_argument("--students", type=int, default=10_000, help="push: background students")
    parser.add_argument("--probes", type=float, default=2, help="push: probe events/s per kind")
    parser.add_argument("--streams", type=int, default=1000, help="fanout: open streams")
    parser.add_argument("--changing", type=int, default=50, help="fanout: changes per second")
    parser.add_argument("--realtime-rate", type=float, default=50, help="fanout: /realtime req/s")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/stream"))
    args = parser.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    metrics: list[Metric] = []
    results: dict[str, Any] = {}
    load_at_start = loadavg()
    parts = args.part.split(",")
    if "push" in parts:
        found, results["push"] = push_under_load(
            args.workdir / "push", seconds=args.seconds, rate=args.rate,
            students=args.students, probes_per_s=args.probes,
        )  # fmt: skip
        metrics += found
    if "fanout" in parts:
        found, results["fanout"] = fanout(
            args.workdir / "fanout", streams=args.streams, changing=args.changing,
            seconds=args.seconds, realtime_rate=args.realtime_rate,
        )  # fmt: skip
        metrics += found
    if "micro" in parts:
        metrics += micro(args.workdir / "micro", streams=args.streams, changes=500, per_poll=5)
    if "memory" in parts:
        metrics += memory(args.workdir / "memory", streams=args.streams)
    load = f"{load_at_start} → {loadavg()} (2 cores; other users' work counts)"
    metrics.append(Metric("machine: 1-minute load average at start → end", load))
    (args.workdir / "results.json").write_text(json.dumps(results, default=str))
    print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
