"""A small HTTP load generator: N concurrent clients, latency percentiles, requests/s.

Run it in its own process (so its CPU is not the server's)::

    python -m bench.http_load --url 'http://127.0.0.1:8000/api/dashboard/realtime' \\
        --tokens-file tokens.txt --concurrency 50 --duration 20

Each of ``--concurrency`` clients sends one request, waits for the answer, sends
the next (a closed loop, like wrk), until ``--duration`` seconds passed or
``--max-requests`` were sent. With ``--rate R`` the clients instead start
requests at R per second in total (an open loop; latency then includes any
queueing at the server, not at the client). Every request carries
``Authorization: Bearer <token>``: ``--token`` for all, or ``--tokens-file`` (one
per line, taken round-robin, e.g. one student each). ``{i}`` in the URL is
replaced by the request's number (to vary a query parameter). Responses other
than 2xx and transport errors are counted as errors. The first ``--warmup``
seconds are not recorded.

Prints a summary line and ``BENCH-RESULT {json}`` with p50/p95/p99/max in ms,
requests/s, counts of requests, errors and status codes. ``--client`` picks
httpx (default) or aiohttp (less client CPU per request: on a 2-core machine
the load generator shares the cores with the server).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Fetch = Callable[[str, dict[str, str]], Awaitable[int]]


@dataclass
class LoadResult:
    """What one load run measured (latencies in ms)."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    seconds: float = 0.0
    sent: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def q(p: float) -> float:
            if not ordered:
                return float("nan")
            return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]

        return {
            "requests": len(ordered), "errors": self.errors, "seconds": round(self.seconds, 3),
            "rps": round(len(ordered) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(q(0.50), 2), "p95_ms": round(q(0.95), 2),
            "p99_ms": round(q(0.99), 2), "max_ms": round(ordered[-1], 2) if ordered else None,
            "mean_ms": round(sum(ordered) / len(ordered), 2) if ordered else None,
            "statuses": dict(self.statuses),
        }  # fmt: skip


def load_tokens(token: str | None, tokens_file: Path | None) -> list[str]:
    tokens = [token] if token else []
    if tokens_file is not None:
        tokens += [line.strip() for line in tokens_file.read_text().splitlines() if line.strip()]
    return tokens or [""]


async def _client(kind: str, concurrency: int, timeout: float) -> tuple[Fetch, Any]:
    if kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

        async def fetch_aiohttp(url: str, headers: dict[str, str]) -> int:
            async with session.get(url, headers=headers) as response:
                await response.read()
                return response.status

        return fetch_aiohttp, session.close

    import httpx

    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=timeout,
    )

    async def fetch_httpx(url: str, headers: dict[str, str]) -> int:
        response = await client.get(url, headers=headers)
        return response.status_code

    return fetch_httpx, client.aclose


async def run_load(
    url: str, tokens: list[str], *, concurrency: int = 50, duration: float = 10.0,
    max_requests: int = 0, rate: float = 0.0, warmup: float = 0.0, timeout: float = 30.0,
    client: str = "httpx",
) -> LoadResult:  # fmt: skip
    """Drive the URL; return the recorded latencies (see the module docstring)."""
    fetch, close = await _client(client, concurrency, timeout)
    result = LoadResult()
    counter = itertools.count()
    start = time.perf_counter()
    record_from = start + warmup
    stop_at = record_from + duration
    limit = max_requests or sys.maxsize

    async def one(n: int) -> None:
        token = tokens[n % len(tokens)]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        sent = time.perf_counter()
        try:
            status = await fetch(url.replace("{i}", str(n)), headers)
        except Exception as exc:  # transport error or timeout: counted, not raised
            result.errors += 1
            result.statuses[type(exc).__name__] += 1
            return
        done = time.perf_counter()
        if sent >= record_from:
            result.latencies.append((done - sent) * 1000)
            result.statuses[str(status)] += 1
            if not 200 <= status < 300:
                result.errors += 1

    async def closed_loop() -> None:
        while time.perf_counter() < stop_at:
            n = next(counter)
            if n >= limit:
                return
            result.sent += 1
            await one(n)

    async def open_loop() -> None:
        gate = asyncio.Semaphore(concurrency)
        pending: set[asyncio.Task[None]] = set()
        interval = 1.0 / rate
        next_at = time.perf_counter()
        while time.perf_counter() < stop_at:
            n = next(counter)
            if n >= limit:
                break
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            await gate.acquire()
            result.sent += 1
            task = asyncio.create_task(one(n))
            pending.add(task)
            task.add_done_callback(lambda t: (pending.discard(t), gate.release()))
        if pending:
            await asyncio.gather(*pending)

    try:
        if rate > 0:
            await open_loop()
        else:
            await asyncio.gather(*(closed_loop() for _ in range(concurrency)))
    finally:
        result.seconds = time.perf_counter() - max(start, record_from)
        await close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="may contain {i}, the request number")
    parser.add_argument("--token", help="bearer token for every request")
    parser.add_argument("--tokens-file", type=Path, help="one token per line, round-robin")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (after warmup)")
    parser.add_argument("--max-requests", type=int, default=0, help="0 = no limit")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests/s in all")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not recorded")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    tokens = load_tokens(args.token, args.tokens_file)
    result = asyncio.run(run_load(
        args.url, tokens, concurrency=args.concurrency, duration=args.duration,
        max_requests=args.max_requests, rate=args.rate, warmup=args.warmup,
        timeout=args.timeout, client=args.client,
    ))  # fmt: skip
    summary = {"label": args.label, "url": args.url, "concurrency": args.concurrency,
               "client": args.client, **result.summary()}  # fmt: skip
    print(
        f"{args.label or args.url}: {summary['requests']} requests, {summary['errors']} errors, "
        f"{summary['rps']} req/s, p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, "
        f"p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms, statuses {summary['statuses']}"
    )
    print("BENCH-RESULT " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
