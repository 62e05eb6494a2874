"""Leaderboard benchmark: ``/api/leaderboard`` at 100k students / 10M events, 50 clients.

``python -m bench.leaderboard --students 100000 --events 10000000`` (or
``--data-dir`` of an earlier load, to skip loading):

1. loads the data straight into an embedded ClickHouse with ``bench.load_reads``
   (its own process; the worker would take far longer on 2 cores): the events,
   and the aggregate rows the worker would write for them. The materialized
   view of migration 0007 fills ``leaderboard_points`` from that insert, as it
   does from the worker's. Then ``OPTIMIZE … FINAL`` on ``leaderboard_points``,
   as ``load_reads`` does for the other tables (a long-running table is merged
   in the background);
2. starts ``bench.leaderboard_server`` (the project's app, plus routes that
   write points as the worker would, in the same process: one process per
   data directory);
3. times the first read of each ranking (the build: one ClickHouse query),
   then drives each case with ``bench.http_load`` in its own process:
   ``--concurrency`` clients in a closed loop, each request a different learner
   (round-robin over 5,000 tokens), ``tz=Europe/Paris`` as the page sends it:
   ``week`` and ``all``, over all courses and one, ``month``, and ``week``
   without ``tz`` (500 learners: each one's first read looks up their zone,
   measured apart; the zone is kept afterwards);
   ``week`` and ``all`` also in an open loop at ``--rate`` requests/s (50
   readers polling once a second);
4. the same ``week`` and ``all`` reads while 1,000 learners a second earn
   points (worker-like writes in batches every 0.1 s: rankings are rebuilt);
5. freshness: a learner earns 10 points; how long until their own ``me``
   shows them, polling every 50 ms (idle, then under the write load).

Prints a table and writes ``leaderboard.json`` in the work directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import PYTHON, ROOT, Child, Metric, ProcSampler, pct, say, table, wait_healthy
from bench.reads import http_load, load_data
from infra.broker import free_port
from infra.tokens import make_token

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
COURSE = "course-007"
PARIS = "tz=Europe/Paris"
CASES = {
    "week, all courses": f"period=week&{PARIS}",
    "all, all courses": f"period=all&{PARIS}",
    "week, one course": f"period=week&courseId={COURSE}&{PARIS}",
    "all, one course": f"period=all&courseId={COURSE}&{PARIS}",
    "month, all courses": f"period=month&{PARIS}",
    "week, all courses, no tz": "period=week",
}
NO_TZ = "week, all courses, no tz"
UNDER_WRITES = ("week, all courses", "all, all courses")

SETTLE = """
import sys, time
from infra.clickhouse import connect, migrate
client = connect(f"chdb://{sys.argv[1]}/clickhouse", attempts=3)
migrate(client)
started = time.perf_counter()
client.command("OPTIMIZE TABLE leaderboard_points FINAL")
rows = client.query("SELECT count() FROM leaderboard_points").result_rows[0][0]
print("BENCH-RESULT", {"seconds": round(time.perf_counter() - started, 1), "rows": rows})
"""


def settle(data_dir: Path) -> str:
    out = subprocess.run([PYTHON, "-c", SETTLE, str(data_dir)], cwd=ROOT, capture_output=True,
                         text=True, timeout=1800, env=_env())  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout.strip().splitlines()[-1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def first_reads(base: str, token: str) -> dict[str, float]:
    """Milliseconds of each case's first read (its ranking is built then)."""
    timings = {}
    with httpx.Client(base_url=base, timeout=120) as http:
        for name, query in CASES.items():
            started = time.perf_counter()
            response = http.get(f"/api/leaderboard?{query}",
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            response.raise_for_status()
            timings[name] = round((time.perf_counter() - started) * 1000, 1)
    return timings


def freshness(base: str, students: int, trials: int, query: str, seed: int) -> list[float]:
    """Seconds from a learner's points written to their own ``me`` showing them."""
    rng = random.Random(seed)
    delays: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(trials):
            index = rng.randrange(students)
            student = f"s{index:07d}"
            headers = {"Authorization": f"Bearer {make_token(SECRET, student)}"}

            def points(h: dict[str, str] = headers) -> int:
                body = http.get(f"/api/leaderboard?{query}", headers=h).json()
                return int(body["me"]["points"])

            before = points()
            course = f"course-{(index * 7) % 50 + 1:03d}"
            http.post("/bench/award", params={"student": student, "course": course, "points": 10})
            written = time.monotonic()
            deadline = written + 30
            while points() < before + 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            delays.append(time.monotonic() - written)
            time.sleep(rng.uniform(0.2, 0.8))  # not in step with the refresher
    return delays


def run(args: argparse.Namespace) -> tuple[list[Metric], dict[str, Any]]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {"students": args.students, "events": args.events,
                           "concurrency": args.concurrency}  # fmt: skip
    raw["load_average"] = os.getloadavg()
    data_dir = args.data_dir or workdir / "data"
    if args.data_dir is None:
        say(f"leaderboard: loading {args.students:,} students / {args.events:,} events")
        raw["load"] = load_data(data_dir, args.students, args.events, workdir / "load.log")
    raw["settle"] = settle(data_dir)
    say(f"leaderboard: data ready ({raw['settle']}); starting the API")
    port = free_port()
    env = {"EDUKNIT_DATA_DIR": str(data_dir), "EDUKNIT_API_PORT": str(port),
           "EDUKNIT_JWT_SECRET": SECRET, "EDUKNIT_LOG_LEVEL": "warning"}  # fmt: skip
    server = Child("api", [PYTHON, "-m", "bench.leaderboard_server"], workdir / "api.log", env)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(17)
    ids = [f"s{rng.randrange(args.students):07d}" for _ in range(min(args.students, 5000))]
    tokens_file = workdir / "tokens.txt"
    tokens_file.write_text("\n".join(make_token(SECRET, s, ttl_seconds=6 * 3600) for s in ids))
    sampler = ProcSampler(server.pid, interval=0.5).start()
    try:
        wait_healthy(base, server, timeout=120)
        raw["rss_start_mib"] = sampler.sample()[2]
        raw["first_read_ms"] = first_reads(base, make_token(SECRET, ids[0]))
        raw["rss_built_mib"] = sampler.sample()[2]
        # Without tz, a learner's first read looks up their zone (kept afterwards): the
        # no-tz case polls 500 learners, after each read once (measured apart).
        few = workdir / "tokens-500.txt"
        few.write_text("\n".join(tokens_file.read_text().splitlines()[:500]))
        cpu0 = sampler.sample()[1]
        raw["no tz, first read"] = http_load(
            f"{base}/api/leaderboard?{CASES[NO_TZ]}", few, args.concurrency, 600,
            label="no tz, first read", max_requests=500, warmup=0,
        )  # fmt: skip
        raw["no tz, first read"]["server_cpu_s"] = round(sampler.sample()[1] - cpu0, 2)

        def measure(label: str, query: str, tokens: Path, rate: float = 0) -> dict[str, Any]:
            loop = f"open loop {rate:g} req/s" if rate else f"{args.concurrency} clients"
            say(f"leaderboard: {label}, {loop}, {args.duration:g} s")
            cpu0, written0 = sampler.sample()[1], _written(base)
            result = http_load(f"{base}/api/leaderboard?{query}", tokens, args.concurrency,
                               args.duration, rate=rate, label=label)  # fmt: skip
            result["server_cpu_s"] = round(sampler.sample()[1] - cpu0, 2)
            result["learners_written"] = _written(base) - written0
            return result

        for name, query in CASES.items():
            raw[name] = measure(name, query, few if name == NO_TZ else tokens_file)
        for name in UNDER_WRITES:
            raw[f"{name}, open"] = measure(name, CASES[name], tokens_file, args.rate)
        say("leaderboard: freshness, idle")
        for seed, (key, case) in enumerate((("fresh_week", "week, all courses"),
                                            ("fresh_all", "all, all courses"))):  # fmt: skip
            raw[key] = freshness(base, args.students, args.trials, CASES[case], seed)
        httpx.post(f"{base}/bench/traffic", params={"rate": args.write_rate}, timeout=30)
        time.sleep(3)
        for name in UNDER_WRITES:
            raw[f"{name} + writes"] = measure(f"{name} + writes", CASES[name], tokens_file)
            raw[f"{name} + writes, open"] = measure(
                f"{name} + writes", CASES[name], tokens_file, args.rate
            )
        say("leaderboard: freshness under writes")
        under = (
            ("fresh_week_writes", "week, all courses"),
            ("fresh_all_writes", "all, all courses"),
        )
        for seed, (key, case) in enumerate(under, 2):
            raw[key] = freshness(base, args.students, args.trials, CASES[case], seed)
        httpx.post(f"{base}/bench/traffic", params={"rate": 0}, timeout=30)
        raw["rss_end_mib"] = sampler.sample()[2]
        raw["peak_rss_mib"] = sampler.peak_rss_mib
    finally:
        sampler.stop()
        server.stop()
    (workdir / "leaderboard.json").write_text(json.dumps(raw, indent=1))
    return metrics(raw, args), raw


def _written(base: str) -> int:
    return int(httpx.get(f"{base}/bench/traffic", timeout=30).json()["written"])


def _lat(r: dict[str, Any]) -> str:
    cpu = r["server_cpu_s"] / max(1, r["requests"]) * 1000
    return (f"p50 {r['p50_ms']:.1f} / p95 {r['p95_ms']:.1f} / p99 {r['p99_ms']:.1f} ms, "
            f"{r['rps']:,.0f} req/s, {r['errors']} err, API CPU {cpu:.2f} ms/req")  # fmt: skip


def _fresh(delays: list[float]) -> str:
    return f"p50 {pct(delays, 0.5):.2f} s, max {max(delays):.2f} s ({len(delays)} trials)"


def metrics(raw: dict[str, Any], args: argparse.Namespace) -> list[Metric]:
    size = f"{raw['students'] / 1e3:g}k students / {raw['events'] / 1e6:g}M events"
    c = raw["concurrency"]
    load = ", ".join(f"{x:.1f}" for x in raw["load_average"])
    rows = [Metric(f"leaderboard: data ({size}); machine load average at start",
                   f"{raw['settle']}; {load}", "", None)]  # fmt: skip
    for name, ms in raw["first_read_ms"].items():
        rows.append(Metric(f"leaderboard: first read (ranking built), {name}", f"{ms:.0f} ms",
                           "once per key", None))  # fmt: skip
    first = raw["no tz, first read"]
    rows.append(Metric("leaderboard: week, no tz, first read of 500 learners (zone read)",
                       _lat(first), "", None))  # fmt: skip
    for name in CASES:
        r = raw[name]
        rows.append(Metric(f"leaderboard: {name}, {c} clients", _lat(r), "p99 ≤ 100 ms",
                           r["p99_ms"] <= 100 and r["errors"] == 0))  # fmt: skip
    for name in UNDER_WRITES:
        r = raw[f"{name}, open"]
        rows.append(Metric(f"leaderboard: {name}, open loop {args.rate:g} req/s", _lat(r),
                           "p99 ≤ 100 ms", r["p99_ms"] <= 100 and r["errors"] == 0))  # fmt: skip
    for name in UNDER_WRITES:
        for suffix, loop in ((" + writes", f"{c} clients"),
                             (" + writes, open", f"open loop {args.rate:g} req/s")):  # fmt: skip
            r = raw[f"{name}{suffix}"]
            rate = r["learners_written"] / max(1e-9, r["seconds"] + 2)
            ok = r["p99_ms"] <= 100 and r["errors"] == 0
            rows.append(Metric(f"leaderboard: {name}, {loop}, {rate:,.0f} learners/s earning",
                               _lat(r), "p99 ≤ 100 ms", ok))  # fmt: skip
    for key, label in (("fresh_week", "week, idle"), ("fresh_all", "all, idle"),
                       ("fresh_week_writes", "week, under writes"),
                       ("fresh_all_writes", "all, under writes")):  # fmt: skip
        delays = raw[key]
        rows.append(Metric(f"leaderboard: freshness of a rank after points are written, {label}",
                           _fresh(delays), "≤ 5 s", max(delays) <= 5))  # fmt: skip
    rss = (f"{raw['rss_start_mib']:.0f} / {raw['rss_built_mib']:.0f} / "
           f"{raw['rss_end_mib']:.0f} ({raw['peak_rss_mib']:.0f}) MiB")  # fmt: skip
    rows.append(Metric("leaderboard: API RSS at start / rankings built / end (peak)", rss))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--trials", type=int, default=10, help="freshness trials per case")
    parser.add_argument("--write-rate", type=float, default=1000, help="learners/s earning")
    parser.add_argument("--rate", type=float, default=50, help="open loop: requests/s in all")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/leaderboard"))
    parser.add_argument("--data-dir", type=Path, help="an earlier load to reuse (not deleted)")
    args = parser.parse_args(argv)
    if args.data_dir is None and args.workdir.exists():
        shutil.rmtree(args.workdir)
    rows, _ = run(args)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
