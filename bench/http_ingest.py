"""HTTP ingest benchmark: POST /api/events and /xapi/statements through one API process.

``python -m bench.http_ingest [--seconds 15] [--concurrency 4] [--rate 50] [--batch 100]``

Starts its own Tansu broker and one API process (``python -m eduknit.cli api``,
the standalone API as deployed, on an embedded ClickHouse of its own in the
workdir) on free loopback ports, and stops both by PID at the end. Then, one
after the other (the machine has 2 cores):

1. the reference, the Kafka producer alone: the API's own publisher
   (``KafkaEventPublisher``, ``acks=all``, through ``api.ingest.publish_all``)
   producing the same events in batches from this process, ``--concurrency``
   batches in flight, for ``--seconds`` (no HTTP, no parsing, no validation);
2. per workload, a closed loop of ``--concurrency`` clients, each posting its
   next batch when the last one is answered (the throughput), then an open loop
   at ``--rate`` batches/s (the latency at that load; 50 x 100 = 5,000/s):
   - ``events``: 100 learning events per ``POST /api/events`` (``testkit.workload``'s
     realistic mix over 10,000 students);
   - ``xapi-counted``: 100 statements per ``POST /xapi/statements``, all of them
     of the 16 Open edX fixture statements that count (one event each);
   - ``xapi-openedx``: 100 statements drawn in turn from all 90 fixture
     statements (video, forum, navigation... 16 of 90 count).
   Statements are the real fixtures (``../shared/fixtures/xapi-openedx``) with a
   learner (of 10,000), id and recent timestamp of their own.

Each phase reports batches/s, statements/s, events/s produced, batch latency
p50/p99/max (ms, from sending the request to the last byte of the answer),
the CPU the API process used (``/proc``) per event and per statement, and the
p99 of a ``GET /healthz`` sent every 20 ms meanwhile (how long a batch holds the
API's event loop from other requests). Every
answer must be 200 with every event accepted (else the phase says how many
were not). The load generator (aiohttp) runs in this process and shares the
2 cores with the API and the broker. Prints a table and ``BENCH-RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import itertools
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from api.ingest import Accepted, publish_all
from api.publisher import KafkaEventPublisher
from bench.common import PYTHON, Child, Metric, pct, proc_cpu_seconds, say, table
from bench.kafka_io import start_broker
from infra.broker import free_port
from infra.tokens import make_token
from testkit.workload import generate
from testkit.xapi_fixtures import fixture_names, statements

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
KEY, LRS_SECRET = "bench-lms", "bench-lrs-secret-0123456789"
STUDENTS = 10_000
Batch = tuple[bytes, int, int]  # body, statements in it, events it makes
Post = Callable[[bytes], Awaitable[tuple[int, bytes]]]


# ----------------------------------------------------------------- workloads
def event_batches(size: int, count: int) -> tuple[list[Batch], list[list[Accepted]]]:
    """``count`` batches of ``size`` learning events: HTTP bodies and the publisher's input."""
    wl = generate(size * count, min(STUDENTS, size * count), courses=50, days=5.0)
    values = [value for _, value in wl.messages[: size * count]]
    bodies: list[Batch] = []
    accepted: list[list[Accepted]] = []
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        bodies.append((b"[" + b",".join(chunk) + b"]", len(chunk), len(chunk)))
        events = [orjson.loads(value) for value in chunk]
        accepted.append([Accepted(event["studentId"], event) for event in events])
    return bodies, accepted


def fixture_statements() -> list[tuple[dict[str, Any], bool]]:
    """The 90 fixture statements, each with whether it counts (the table of docs/ingest.md)."""
    from schemas.xapi import translate_all  # the translator only labels the mix here

    found = []
    now = dt.datetime.now(dt.UTC)
    for name in fixture_names():
        for statement in statements(name):
            (translation,) = translate_all(statement, now=now)
            found.append((statement, translation.event is not None))
    return found


def statement_batches(size: int, count: int, counted_only: bool) -> list[Batch]:
    """``count`` batches of ``size`` fixture statements, each with its own learner and id."""
    pool = [(s, c) for s, c in fixture_statements() if c or not counted_only]
    cycle = itertools.cycle(pool)
    now = dt.datetime.now(dt.UTC)
    batches: list[Batch] = []
    n = 0
    for _ in range(count):
        chosen = []
        events = 0
        for _ in range(size):
            statement, counts = next(cycle)
            copied = orjson.loads(orjson.dumps(statement))
            copied["actor"]["account"]["name"] = f"s{n % STUDENTS:07d}"
            copied["id"] = str(uuid.uuid4())
            copied["timestamp"] = (now - dt.timedelta(seconds=n % 86_400)).isoformat()
            chosen.append(copied)
            events += counts
            n += 1
        batches.append((orjson.dumps(chosen), size, events))
    return batches


# ----------------------------------------------------------------- driving
async def drive(
    post: Post, batches: list[Batch], *, seconds: float, concurrency: int, rate: float = 0.0,
    check: Callable[[bytes, Batch], bool],
) -> dict[str, Any]:  # fmt: skip
    """Post batches (closed loop, or open at ``rate``/s); latencies and counts."""
    latencies: list[float] = []
    counts = {"batches": 0, "statements": 0, "events": 0, "failed": 0}
    source = itertools.cycle(batches)
    stop_at = time.perf_counter() + seconds

    async def one(batch: Batch) -> None:
        sent = time.perf_counter()
        status, answer = await post(batch[0])
        latencies.append((time.perf_counter() - sent) * 1000)
        if status != 200 or not check(answer, batch):
            counts["failed"] += 1
            return
        counts["batches"] += 1
        counts["statements"] += batch[1]
        counts["events"] += batch[2]

    async def closed() -> None:
        while time.perf_counter() < stop_at:
            await one(next(source))

    started = time.perf_counter()
    if rate > 0:
        pending: set[asyncio.Task[None]] = set()
        next_at = started
        while next_at < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            task = asyncio.create_task(one(next(source)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1 / rate
        await asyncio.gather(*pending)
    else:
        await asyncio.gather(*(closed() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        **counts, "seconds": round(elapsed, 3),
        "batches_per_s": round(counts["batches"] / elapsed, 1),
        "statements_per_s": round(counts["statements"] / elapsed),
        "events_per_s": round(counts["events"] / elapsed),
        "p50_ms": round(pct(latencies, 0.50), 1), "p99_ms": round(pct(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
    }  # fmt: skip


async def publisher_reference(
    bootstrap: str, batches: list[list[Accepted]], seconds: float, concurrency: int
) -> dict[str, Any]:
    """The API's publisher alone, from this process: the rate Kafka acknowledges batches at."""
    publisher = KafkaEventPublisher(bootstrap)
    try:
        await publish_all(publisher, batches[0])  # connect, learn the partitions

        async def post(_body: bytes) -> tuple[int, bytes]:
            await publish_all(publisher, next(source))
            return 200, b""

        source = itertools.cycle(batches)
        bodies = [(b"", len(b), len(b)) for b in batches]
        cpu = time.process_time()
        result = await drive(post, bodies, seconds=seconds, concurrency=concurrency,
                             check=lambda _a, _b: True)  # fmt: skip
        result["cpu_us_per_event"] = round(
            (time.process_time() - cpu) / max(1, result["events"]) * 1e6, 1
        )
        return result
    finally:
        publisher.close()


async def http_phase(
    url: str, headers: dict[str, str], batches: list[Batch], api_pid: int, *,
    seconds: float, concurrency: int, rate: float, kind: str, probe_url: str,
) -> dict[str, Any]:  # fmt: skip
    """Warm up, then the closed loop and the open loop against one route."""
    connector = aiohttp.TCPConnector(limit=max(concurrency, 64))
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def post(body: bytes) -> tuple[int, bytes]:
            async with session.post(url, data=body) as response:
                return response.status, await response.read()

        def check(answer: bytes, batch: Batch) -> bool:
            decoded = orjson.loads(answer)
            if kind == "events":
                return bool(decoded["accepted"] == batch[1] and not decoded["rejected"])
            return len(decoded) == batch[1]

        async def probe(stop: asyncio.Event, latencies: list[float]) -> None:
            """Another client's cheapest request, every 20 ms: how long the loop is held."""
            while not stop.is_set():
                sent = time.perf_counter()
                async with session.get(probe_url) as response:
                    await response.read()
                latencies.append((time.perf_counter() - sent) * 1000)
                await asyncio.sleep(0.02)

        await drive(post, batches, seconds=min(2.0, seconds), concurrency=concurrency, check=check)
        out: dict[str, Any] = {}
        for loop, loop_rate in (("closed", 0.0), ("open", rate)):
            cpu = proc_cpu_seconds(api_pid)
            stop, probed = asyncio.Event(), []
            prober = asyncio.create_task(probe(stop, probed))
            result = await drive(post, batches, seconds=seconds, concurrency=concurrency,
                                 rate=loop_rate, check=check)  # fmt: skip
            stop.set()
            await prober
            result["healthz_p99_ms"] = round(pct(probed, 0.99), 1)
            used = proc_cpu_seconds(api_pid) - cpu
            result["api_cpu_share"] = round(used / result["seconds"], 2)
            result["api_cpu_us_per_event"] = round(used / max(1, result["events"]) * 1e6, 1)
            result["api_cpu_us_per_statement"] = round(used / max(1, result["statements"]) * 1e6, 1)
            out[loop] = result
            say(f"{kind} {loop}: {json.dumps(result)}")
        return out


# ----------------------------------------------------------------- the run
def start_api(workdir: Path, bootstrap: str) -> tuple[Child, str]:
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "EDUKNIT_API_PORT": str(port),
        "EDUKNIT_DATA_DIR": str(workdir / "data"), "EDUKNIT_JWT_SECRET": SECRET,
        "EDUKNIT_XAPI_KEY": KEY, "EDUKNIT_XAPI_SECRET": LRS_SECRET, "EDUKNIT_LOG_LEVEL": "warning",
    }  # fmt: skip
    api = Child("api", [PYTHON, "-m", "eduknit.cli", "api"], workdir / "api.log", env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return api, base
        except httpx.HTTPError:
            pass
        if not api.alive() or time.monotonic() > deadline:
            api.stop()
            raise RuntimeError(f"the API did not become ready:\n{api.tail()}")
        time.sleep(0.2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir: Path = args.workdir
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    count = max(20, int(args.rate * args.seconds * 1.2))  # distinct batches, then cycled
    say(f"building {count} batches of {args.batch} per workload")
    event_bodies, event_inputs = event_batches(args.batch, count)
    workloads = {
        "events": event_bodies,
        "xapi-counted": statement_batches(args.batch, count, counted_only=True),
        "xapi-openedx": statement_batches(args.batch, count, counted_only=False),
    }
    raw: dict[str, Any] = {"batch": args.batch, "concurrency": args.concurrency,
                           "rate": args.rate, "seconds": args.seconds,
                           "load_start": os.getloadavg()[0]}  # fmt: skip
    broker = start_broker(workdir / "broker.log")
    api: Child | None = None
    try:
        say("reference: the API's Kafka publisher alone")
        raw["publisher"] = asyncio.run(publisher_reference(
            broker.bootstrap_servers, event_inputs, args.seconds, args.concurrency))  # fmt: skip
        say(f"publisher: {json.dumps(raw['publisher'])}")
        api, base = start_api(workdir, broker.bootstrap_servers)
        service = {"Authorization": f"Bearer {make_token(SECRET, 'bench', role='service')}",
                   "Content-Type": "application/json"}  # fmt: skip
        pair = base64.b64encode(f"{KEY}:{LRS_SECRET}".encode()).decode()
        lrs = {"Authorization": f"Basic {pair}",
               "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}  # fmt: skip
        idle = proc_cpu_seconds(api.pid)
        time.sleep(3)
        raw["api_idle_cpu_share"] = round((proc_cpu_seconds(api.pid) - idle) / 3, 3)
        for kind, batches in workloads.items():
            url = f"{base}/api/events" if kind == "events" else f"{base}/xapi/statements"
            raw[kind] = asyncio.run(http_phase(
                url, service if kind == "events" else lrs, batches, api.pid,
                seconds=args.seconds, concurrency=args.concurrency, rate=args.rate,
                kind="events" if kind == "events" else "xapi", probe_url=f"{base}/healthz",
            ))  # fmt: skip
    finally:
        if api is not None:
            api.stop()
        broker.stop()
    raw["load_end"] = os.getloadavg()[0]
    (workdir / "http_ingest.json").write_text(json.dumps(raw, indent=1))
    return raw


def metrics(raw: dict[str, Any]) -> list[Metric]:
    rows: list[Metric] = []
    pub = raw["publisher"]
    rows.append(Metric(
        f"reference: API publisher alone, {raw['concurrency']} batches of {raw['batch']} in flight",
        f"{pub['events_per_s']:,} events/s, p99 {pub['p99_ms']} ms, "
        f"{pub['cpu_us_per_event']} µs CPU/event", "the ceiling for the HTTP routes",
    ))  # fmt: skip
    for kind in ("events", "xapi-counted", "xapi-openedx"):
        for loop in ("closed", "open"):
            r = raw[kind][loop]
            how = (f"{raw['concurrency']} clients" if loop == "closed"
                   else f"open loop {raw['rate']:g} batches/s")  # fmt: skip
            rate = f"{r['events_per_s']:,} events/s"
            if kind != "events":
                rate = f"{r['statements_per_s']:,} statements/s, " + rate
            ok = r["failed"] == 0 and r["p99_ms"] <= 100
            target = "p99 ≤ 100 ms"
            if kind in ("events", "xapi-counted") and loop == "closed":
                ok = ok and r["events_per_s"] >= 5000
                target = "≥ 5,000 events/s, p99 ≤ 100 ms"
            pub_share = f"{100 * r['events_per_s'] / pub['events_per_s']:.0f} % of the publisher"
            rows.append(Metric(
                f"{kind}, {how}",
                f"{rate} ({pub_share}); p50 {r['p50_ms']} / p99 {r['p99_ms']} / max "
                f"{r['max_ms']} ms; API {r['api_cpu_us_per_event']} µs CPU/event, "
                f"{r['api_cpu_us_per_statement']} µs/statement, {r['api_cpu_share']} cores; "
                f"GET /healthz meanwhile p99 {r['healthz_p99_ms']} ms"
                + (f"; {r['failed']} FAILED" if r["failed"] else ""),
                target, ok,
            ))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per loop")
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop clients")
    parser.add_argument("--rate", type=float, default=50.0, help="open loop: batches/s")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/http-ingest"))
    args = parser.parse_args(argv)
    raw = run(args)
    print(table(metrics(raw)))
    print(f"API idle CPU {raw['api_idle_cpu_share']} cores; load average "
          f"{raw['load_start']:.2f} at the start, {raw['load_end']:.2f} at the end")  # fmt: skip
    print("BENCH-RESULT " + json.dumps(raw), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
