"""Worker memory: RSS of the real worker holding the state of N students.

``python -m bench.memory --students 1000000`` produces two events per student
(``testkit.workload``: an enrollment and a lesson, over the last 6 days) into a
fresh broker and runs ``python -m eduknit.cli worker`` over them as the ingest
benchmark does, sampling its RSS from ``/proc``: at the first batch (the
process with its imports and the ClickHouse engine, no state yet) and when
every message is applied. The worker keeps at most ``EDUKNIT_STATE_CACHE_STUDENTS``
(200k by default) states in memory and drops the least recently used ones
(they are saved in ClickHouse), so past that size RSS should stop growing with
students; the growth per student is reported from the run's own numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Metric, say, table
from bench.ingest import run_worker
from bench.kafka_io import produce_all, produce_catalog, start_broker
from infra.settings import Settings
from testkit.workload import generate

GIB_MIB = 1024


def memory(
    students: int, workdir: Path, events_per_student: int = 2
) -> tuple[list[Metric], dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    events = students * events_per_student
    say(f"memory: generating {events:,} events for {students:,} students")
    wl = generate(events, students, sample_students=0)
    broker = start_broker(workdir / "broker.log")
    try:
        produce_catalog(broker.bootstrap_servers, wl.catalog)
        count, seconds = produce_all(broker.bootstrap_servers, wl.messages)
        del wl
        say(f"memory: produced {count:,} in {seconds:.1f} s; running the worker")
        started = time.perf_counter()
        worker = run_worker(broker.bootstrap_servers, count, workdir, False, 300 + count / 1000)
    finally:
        broker.stop()
    raw = {"students": students, "events": events, "messages": count, **worker,
           "wall_s": time.perf_counter() - started}  # fmt: skip
    return memory_metrics(raw), raw


def memory_metrics(raw: dict[str, Any]) -> list[Metric]:
    students = raw["students"]
    cached = min(students, Settings().state_cache_students)
    grown = raw["rss_end_mib"] - raw["rss_start_mib"]
    per_state = grown * 1024 / cached
    target = "≤ 1 GiB" if students <= 100_000 else "say how it grows (cache: 200k states)"
    ok = raw["rss_end_mib"] <= GIB_MIB if students <= 100_000 else None
    return [
        Metric(f"memory: worker RSS with {students / 1e3:g}k students of state "
               f"({raw['messages']:,} msgs)",
               f"{raw['rss_end_mib']:,.0f} MiB (start {raw['rss_start_mib']:,.0f}; "
               f"{cached / 1e3:g}k states cached, +{per_state:.1f} KiB each; "
               f"peak {raw['peak_rss_mib']:,.0f})",
               target, ok),
        Metric("memory: worker events/s in that run", f"{raw['events_per_s']:,.0f}", "", None),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/memory"))
    args = parser.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    metrics, _ = memory(args.students, args.workdir)
    print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
