"""Dashboard read benchmark: the API against recomputing from raw events, 50 clients.

``python -m bench.reads --students 100000 --events 10000000`` loads the data
straight into an embedded ClickHouse (``bench.load_reads``, its own process),
starts ``bench.api_server`` on it (the project's app + the recompute routes),
checks on a few students that the API and the recompute baseline answer the
same, then drives each of

- ``GET /api/dashboard/realtime`` and ``GET /api/dashboard/statistics?days=365``
- ``GET /bench/recompute/realtime`` and ``GET /bench/recompute/statistics?days=365``

with ``bench.http_load`` in a separate process, after each student's dashboard
was opened once (measured too: those reads are the cache misses of the API's kept
payloads, ``api.dashboard_cache``; each run reports its share of hits):
``--concurrency`` clients in a closed loop (each sends its next request when the
last one is answered), every request for another student (one token per
student, round-robin over a few thousand). Then the two API routes once more in
an open loop at ``--rate`` requests/s (50 clients polling once a second), the
load a dashboard page makes.
Optionally py-spy profiles the API during the /realtime run (``--profile``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.common import PYTHON, ROOT, Child, Metric, ProcSampler, say, table, wait_healthy
from infra.broker import free_port
from infra.tokens import make_token

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
ENDPOINTS = {
    "realtime": "/api/dashboard/realtime",
    "statistics": "/api/dashboard/statistics?days=365",
    "recompute_realtime": "/bench/recompute/realtime",
    "recompute_statistics": "/bench/recompute/statistics?days=365",
}


def _bench_result(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT ") :])  # type: ignore[no-any-return]
    raise RuntimeError(f"no result in:\n{stdout[-2000:]}")


def load_data(
    data_dir: Path, students: int, events: int, log: Path, granularity: int = 0
) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, "-m", "bench.load_reads", str(data_dir), "--students", str(students),
         "--events", str(events), "--granularity", str(granularity)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
        env={**_env()},
    )  # fmt: skip
    log.write_text(out.stdout + out.stderr)
    if out.returncode:
        raise RuntimeError(f"load failed:\n{out.stderr[-3000:]}")
    return _bench_result(out.stdout)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def http_load(
    url: str, tokens: Path, concurrency: int, duration: float, rate: float = 0.0,
    label: str = "", max_requests: int = 0, warmup: float = 2,
) -> dict[str, Any]:  # fmt: skip
    argv = [PYTHON, "-m", "bench.http_load", "--url", url, "--tokens-file", str(tokens),
            "--concurrency", str(concurrency), "--duration", str(duration), "--warmup",
            str(warmup), "--client", "aiohttp", "--label", label]  # fmt: skip
    if rate:
        argv += ["--rate", str(rate)]
    if max_requests:
        argv += ["--max-requests", str(max_requests)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                         timeout=duration + 120, env=_env())  # fmt: skip
    return _bench_result(out.stdout)


def cache_lookups(base: str) -> tuple[float, float]:
    """(hits, misses) of the API's kept dashboard payloads so far, from its /metrics."""
    found = {"hit": 0.0, "miss": 0.0}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("eduknit_api_dashboard_cache_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            found[result] = float(line.rsplit(" ", 1)[1])
    return found["hit"], found["miss"]


def hit_ratio(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    hits, misses = after[0] - before[0], after[1] - before[1]
    return hits / (hits + misses) if hits + misses else None


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The fields both routes answer, courses keyed by id (their order is checked apart)."""
    keep = {k: v for k, v in body.items() if k not in ("generatedAt", "notifications")}
    if "courses" in keep:
        keep["courses"] = {c["courseId"]: c for c in keep["courses"]}
    return keep


def check_agreement(base: str, tokens: list[str], count: int) -> tuple[int, list[str]]:
    """On ``count`` students: does the API answer what recomputing from raw events gives?"""
    problems = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for token in tokens[:count]:
            headers = {"Authorization": f"Bearer {token}"}
            for route, baseline in (("realtime", "recompute_realtime"),
                                    ("statistics", "recompute_statistics")):  # fmt: skip
                a = http.get(ENDPOINTS[route], headers=headers).json()
                b = http.get(ENDPOINTS[baseline], headers=headers).json()
                if comparable(a) != comparable(b):
                    problems.append(f"{a.get('studentId')} {route}")
    return count, problems


def reads(
    students: int, events: int, workdir: Path, *, concurrency: int = 50, duration: float = 15,
    rate: float = 50, profile: bool = False, granularity: int = 0,
) -> tuple[list[Metric], dict[str, Any]]:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "reads-data"
    say(f"reads: loading {students:,} students / {events:,} events into ClickHouse")
    raw: dict[str, Any] = {"students": students, "events": events, "concurrency": concurrency}
    raw["load"] = load_data(data_dir, students, events, workdir / "load.log", granularity)
    say(f"reads: loaded in {raw['load']['seconds']} s; starting the API")
    port = free_port()
    env = {"EDUKNIT_DATA_DIR": str(data_dir), "EDUKNIT_API_PORT": str(port),
           "EDUKNIT_JWT_SECRET": SECRET, "EDUKNIT_LOG_LEVEL": "warning"}  # fmt: skip
    server = Child("api", [PYTHON, "-m", "bench.api_server"], workdir / "api.log", env)
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(11)
    ids = [f"s{rng.randrange(students):07d}" for _ in range(min(students, 5000))]
    tokens = [make_token(SECRET, sid, ttl_seconds=6 * 3600) for sid in ids]
    tokens_file = workdir / "tokens.txt"
    tokens_file.write_text("\n".join(tokens) + "\n")
    sampler = ProcSampler(server.pid, interval=0.5).start()
    try:
        wait_healthy(base, server)
        checked, problems = check_agreement(base, tokens, 20)
        raw["agreement"] = {"students": checked, "problems": problems}
        # Each student opens the dashboard once (what the cache has not seen: misses),
        # then the closed loops poll them again, as dashboards are polled.
        say(f"reads: first open of {len(tokens):,} dashboards, {concurrency} clients")
        cpu0, lookups = sampler.sample()[1], cache_lookups(base)
        raw["first_open"] = http_load(base + ENDPOINTS["realtime"], tokens_file, concurrency,
                                      600, label="first open", max_requests=len(tokens),
                                      warmup=0)  # fmt: skip
        raw["first_open"]["server_cpu_s"] = sampler.sample()[1] - cpu0
        raw["first_open"]["hit_ratio"] = hit_ratio(lookups, cache_lookups(base))
        for name, path in ENDPOINTS.items():
            say(f"reads: {name}, {concurrency} clients, {duration:g} s")
            spy = None
            if profile and name == "realtime":
                from bench.ingest import start_pyspy

                spy = start_pyspy(server.pid, workdir / "api-pyspy.txt")
            cpu0, lookups = sampler.sample()[1], cache_lookups(base)
            raw[name] = http_load(base + path, tokens_file, concurrency, duration, label=name)
            raw[name]["server_cpu_s"] = sampler.sample()[1] - cpu0
            raw[name]["hit_ratio"] = hit_ratio(lookups, cache_lookups(base))
            if spy is not None:
                from bench.ingest import stop_pyspy

                stop_pyspy(spy)
        for name in ("realtime", "statistics"):
            say(f"reads: {name}, open loop {rate:g} req/s")
            raw[f"{name}_open"] = http_load(base + ENDPOINTS[name], tokens_file, concurrency,
                                            duration, rate=rate, label=f"{name} open")  # fmt: skip
        raw["server_peak_rss_mib"] = sampler.peak_rss_mib
    finally:
        sampler.stop()
        server.stop()
    (workdir / "reads.json").write_text(json.dumps(raw, indent=1))
    return reads_metrics(raw, rate), raw


def _hits(r: dict[str, Any]) -> str:
    ratio = r.get("hit_ratio")
    return "" if ratio is None else f", {ratio:.0%} from kept payloads"


def _lat(r: dict[str, Any]) -> str:
    return (f"p50 {r['p50_ms']:.0f} / p95 {r['p95_ms']:.0f} / p99 {r['p99_ms']:.0f} ms, "
            f"{r['rps']:,.0f} req/s, {r['errors']} err")  # fmt: skip


def reads_metrics(raw: dict[str, Any], rate: float) -> list[Metric]:
    size = f"{raw['students'] / 1e3:g}k students / {raw['events'] / 1e6:g}M events"
    c = raw["concurrency"]
    rows = [Metric(f"reads: data loaded ({size})", f"{raw['load']['seconds']:.0f} s",
                   "a few minutes", None)]  # fmt: skip
    agreement = raw["agreement"]
    equal = agreement["students"] - len(agreement["problems"])
    rows.append(Metric("reads: API answers = recompute from raw events",
                       f"{equal}/{agreement['students']} students equal", "all",
                       not agreement["problems"]))  # fmt: skip
    first = raw["first_open"]
    rows.append(
        Metric(
            f"reads: first open of {first['requests']:,} dashboards (not kept yet), {c} clients",
            _lat(first) + _hits(first),
            "cache misses",
            None,
        )
    )
    for name, target in (("realtime", 50), ("statistics", 100)):
        api, base = raw[name], raw[f"recompute_{name}"]
        label = "/realtime" if name == "realtime" else "/statistics?days=365"
        speedup = api["rps"] / base["rps"] if base["rps"] else float("inf")
        rows += [
            Metric(f"reads: {label}, {c} clients closed loop", _lat(api) + _hits(api),
                   f"p99 ≤ {target} ms", api["p99_ms"] <= target and api["errors"] == 0),
            Metric(f"reads: {label} recomputed per request, same load", _lat(base),
                   "baseline", None),
            Metric(f"reads: {label} speed-up over recompute (req/s; p50)",
                   f"{speedup:.1f}× ; {base['p50_ms'] / api['p50_ms']:.1f}×", "≥ 10×",
                   speedup >= 10),
            Metric(f"reads: {label}, open loop {rate:g} req/s ({c} clients × 1/s)",
                   _lat(raw[f"{name}_open"]), f"p99 ≤ {target} ms",
                   raw[f"{name}_open"]["p99_ms"] <= target),
        ]  # fmt: skip
    for name in ("realtime", "statistics"):
        per = raw[name]["server_cpu_s"] / max(1, raw[name]["requests"]) * 1000
        rows.append(Metric(f"reads: API server CPU per {name} request", f"{per:.1f} ms", "", None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/reads"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--granularity", type=int, default=0, help="see bench.load_reads")
    args = parser.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    metrics, _ = reads(args.students, args.events, args.workdir, concurrency=args.concurrency,
                       duration=args.duration, rate=args.rate, profile=args.profile,
                       granularity=args.granularity)  # fmt: skip
    print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
