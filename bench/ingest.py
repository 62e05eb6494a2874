"""Ingest benchmark: the real worker, the bare-Faust ceiling and quixstreams, one broker.

``python -m bench.ingest --events 1000000 --students 100000`` generates the
workload (``testkit.workload``), starts an embedded broker, produces the catalog
and every message into it, then runs one consumer at a time on that same topic:

1. the project's worker, ``python -m eduknit.cli worker`` (one process, the
   ClickHouse sink on an embedded engine in a temp data dir). Events/s = the
   messages of every batch but the first / (time of the batch log line that
   completes the last message - time of the first batch line); each batch line
   is logged after its rows are in ClickHouse and its offsets acked, so that is
   "last aggregate visible". Faust's bare counter is timed in the same way
   (first to last event). CPU seconds and RSS
   come from ``/proc`` (sampled), then the worker is stopped and
   ``bench.verify_ingest`` checks the data it wrote;
2. ``bench.faust_counter``: a bare Faust agent that only counts (the ceiling);
3. ``bench/quix_agg.py`` in ``bench/.venv-quix`` (created on first use), its
   results compared with the workload's expectation: the reference
   aggregation (dedup, points, minutes per local day), much less work than the
   worker's;
4. ``bench/quix_full.py`` in the same virtualenv: the worker's whole job (every rule,
   with the project's own code, six tables into an embedded ClickHouse) in
   quixstreams, timed from its first message to the write that completes the last,
   then checked by the same ``bench.verify_ingest`` as the worker.

Optionally the worker is profiled with py-spy (``--profile``, if installed).
Prints the table and writes ``ingest.json`` in the work dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    Child,
    Metric,
    ProcSampler,
    proc_rss_mib,
    say,
    table,
    write_json,
)
from bench.kafka_io import PARTITIONS, produce_all, produce_catalog, start_broker
from testkit.workload import Workload, generate

QUIX_VENV = ROOT / "bench" / ".venv-quix"
QUIX_PINS = ["quixstreams==3.28.1", "confluent-kafka==2.12.2"]
# What bench/quix_full.py imports from the project (schemas, streams, infra.clickhouse)
# needs these, at the versions of requirements.lock: the full peer applies the same
# code as the worker. confluent-kafka stays at the peers' own pin (quixstreams: <2.13).
QUIX_PROJECT_PACKAGES = (
    "clickhouse-connect[chdb]", "chdb", "chdb-core", "pandas", "numpy", "python-dateutil",
    "six", "pyarrow", "backports.zstd", "certifi", "urllib3", "lz4", "orjson",
    "annotated-types", "typing-inspection", "typing_extensions", "rbloom", "tzdata",
)  # fmt: skip
# quixstreams 3.28.1 declares pydantic<2.14 (and pydantic-settings<2.16, which only it
# uses); the project's events are parsed by pydantic 2.14.4: installed over its cap
# (without its dependencies) so both sides parse with the same pydantic-core.
QUIX_OVERRIDES = ("pydantic", "pydantic_core")
QUIX_MARKER = QUIX_VENV / ".installed-pins"
# One line per batch, logged after its rows are in ClickHouse and its offsets acked;
# only the timestamp and the message count are relied on (the rest of the line changes).
BATCH_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})[^\n]*?batch: (\d+) messages")
REFERENCE = {
    "ceiling": "14–15k ev/s (reference, bare Faust counter)",
    "naive_faust": "2.5–2.9k ev/s (reference, Faust agent updating 3 tables)",
    "plain_loop": "100k–180k ev/s (reference, confluent loop, dict state)",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()


def quix_requirements(lock: Path = ROOT / "requirements.lock") -> tuple[list[str], list[str]]:
    """The peers' pins with the project's packages the full peer imports, as locked; and
    the locked packages installed over quixstreams' caps (``QUIX_OVERRIDES``)."""
    locked: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            locked[_canonical(name)] = version.split(";", 1)[0].strip()
    wanted = (*QUIX_PROJECT_PACKAGES, *QUIX_OVERRIDES)
    missing = [name for name in wanted if _canonical(name) not in locked]
    if missing:
        raise RuntimeError(f"requirements.lock pins none of {missing}")

    def pin(name: str) -> str:
        return f"{name}=={locked[_canonical(name)]}"

    return [*QUIX_PINS, *map(pin, QUIX_PROJECT_PACKAGES)], list(map(pin, QUIX_OVERRIDES))


def ensure_quix_venv() -> Path:
    """The peers' own virtualenv (their confluent-kafka pin clashes with the project's).

    Created on first use; the pins it was installed with are kept in a marker file, so
    a venv made with other pins (or before the full peer needed the project's
    packages) is brought up to date by the next run."""
    python = QUIX_VENV / "bin" / "python"
    wanted, overrides = quix_requirements()
    marker = "\n".join([*wanted, "--no-deps", *overrides]) + "\n"
    if not python.exists():
        say("creating bench/.venv-quix (quixstreams and the project's packages)")
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
    if not QUIX_MARKER.exists() or QUIX_MARKER.read_text() != marker:
        say("installing the quixstreams peers' packages into bench/.venv-quix")
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *wanted], check=True)
        subprocess.run([*pip, "--no-deps", *overrides], check=True)
        QUIX_MARKER.write_text(marker)
    return python


def _log_time(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def batch_progress(log: str) -> tuple[int, int, float | None, float | None, int]:
    """(messages so far, messages of the first batch, time of the first and of the last
    batch line, batches). The rate is taken from the first batch line to the last, over
    the messages of the batches after the first, so no batch duration is needed."""
    total, first_size, first, last, batches = 0, 0, None, None, 0
    for match in BATCH_LINE.finditer(log):
        at = _log_time(match.group(1))
        messages = int(match.group(2))
        if first is None:
            first, first_size = at, messages
        total += messages
        last = at
        batches += 1
    return total, first_size, first, last, batches


def expected_json(wl: Workload) -> dict[str, Any]:
    return {
        "points": wl.expected_points, "minutes": wl.expected_minutes, "sample": wl.sample,
        "catalog": wl.catalog_map, "unique": wl.unique_events,
    }  # fmt: skip


def run_worker(
    bootstrap: str, total: int, workdir: Path, profile: bool, timeout: float
) -> dict[str, Any]:
    """The project's worker on the pre-produced topic, until every message is in a batch."""
    data = workdir / "worker-data"
    data.mkdir(parents=True, exist_ok=True)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "EDUKNIT_DATA_DIR": str(data),
           "EDUKNIT_PARTITIONS": str(PARTITIONS), "EDUKNIT_LOG_LEVEL": "info"}  # fmt: skip
    worker = Child("worker", [PYTHON, "-m", "eduknit.cli", "worker"], workdir / "worker.log", env)
    sampler = ProcSampler(worker.pid, interval=0.1).start()
    spy: subprocess.Popen[bytes] | None = None
    spy_out = workdir / "worker-pyspy.txt"
    try:
        deadline = time.monotonic() + timeout
        done, first_size, first, last, batches = 0, 0, None, None, 0
        while done < total:
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did {done}/{total} in time:\n{worker.tail()}")
            if profile and spy is None and done > 0:
                spy = start_pyspy(worker.pid, spy_out)
            time.sleep(0.2)
            done, first_size, first, last, batches = batch_progress(worker.log_text())
        sampler.sample()
        rss_end = proc_rss_mib(worker.pid)
    finally:
        if spy is not None:
            stop_pyspy(spy)
        sampler.stop()
        worker.stop()
    assert first is not None and last is not None
    seconds = last - first
    return {
        "messages": done, "seconds": seconds, "events_per_s": (done - first_size) / seconds,
        "batches": batches, "cpu_s": sampler.cpu_between(first, last),
        "cpu_total_s": sampler.samples[-1][1], "peak_rss_mib": sampler.peak_rss_mib,
        "rss_end_mib": rss_end, "rss_start_mib": sampler.rss_at(first),
        "rss_median_late_mib": sampler.rss_median((first + last) / 2, last),
        "data_dir": str(data), "profile": str(spy_out) if spy is not None else None,
    }  # fmt: skip


def start_pyspy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(spy).exists():
        say("py-spy not installed: no profile")
        return None
    argv = [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
            "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_pyspy(spy: subprocess.Popen[bytes]) -> None:
    import signal

    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(5)


def run_verify(
    data_dir: str, expected_path: Path, workdir: Path, log_name: str = "verify.log"
) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, "-m", "bench.verify_ingest", data_dir, str(expected_path)], cwd=ROOT,
        capture_output=True, text=True, timeout=900, env=_env(),
    )  # fmt: skip
    (workdir / log_name).write_text(out.stdout + out.stderr)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT ") :])  # type: ignore[no-any-return]
    raise RuntimeError(f"verify failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_counter(bootstrap: str, total: int, workdir: Path, timeout: float) -> dict[str, Any]:
    argv = [PYTHON, "-m", "bench.faust_counter", "--bootstrap", bootstrap,
            "--expect", str(total), "--partitions", str(PARTITIONS)]  # fmt: skip
    counter = Child("faust-counter", argv, workdir / "faust-counter.log")
    sampler = ProcSampler(counter.pid, interval=0.2).start()
    try:
        counter.wait_for("BENCH-RESULT ", timeout)
        line = next(x for x in counter.log_text().splitlines() if "BENCH-RESULT " in x)
        result: dict[str, Any] = json.loads(line.split("BENCH-RESULT ", 1)[1])
        sampler.sample()
    finally:
        sampler.stop()
        counter.stop()
    result["events_per_s"] = result["events"] / result["seconds"]
    result["cpu_s"] = sampler.cpu_between(result["first"], result["last"])
    return result


def run_quix(
    bootstrap: str, total: int, wl: Workload, workdir: Path, timeout: float
) -> dict[str, Any]:
    python = ensure_quix_venv()
    out = workdir / "quix-result.json"
    argv = [str(python), str(ROOT / "bench" / "quix_agg.py"), "--bootstrap", bootstrap,
            "--expect", str(total), "--out", str(out),
            "--state-dir", str(workdir / "quix-state")]  # fmt: skip
    quix = Child("quixstreams", argv, workdir / "quix.log")
    sampler = ProcSampler(quix.pid, interval=0.2).start()
    try:
        deadline = time.monotonic() + timeout
        while not out.exists() or "BENCH-RESULT" not in quix.log_text():
            if not quix.alive() and not out.exists():
                raise RuntimeError(f"quixstreams exited:\n{quix.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"quixstreams not done in {timeout} s:\n{quix.tail()}")
            time.sleep(0.2)
        sampler.sample()
    finally:
        sampler.stop()
        quix.stop()
    data = json.loads(out.read_text())
    seconds = data["last"] - data["first"]
    bad_points = sum(1 for s, p in wl.expected_points.items() if data["points"].get(s, 0) != p)
    bad_minutes = 0
    for sid, days in wl.expected_minutes.items():
        got = data["minutes"].get(sid, {})
        want = {d: m for d, m in days.items() if m > 0}
        got = {d: m for d, m in got.items() if m > 0}
        if set(got) != set(want) or any(abs(got[d] - m) > 1e-6 for d, m in want.items()):
            bad_minutes += 1
    return {
        "messages": data["received"], "seconds": seconds, "events_per_s": total / seconds,
        "cpu_s": sampler.cpu_between(data["first"], data["last"]),
        "peak_rss_mib": sampler.peak_rss_mib, "bad_points": bad_points,
        "bad_minutes": bad_minutes, "students": len(wl.expected_points),
    }  # fmt: skip


def run_quix_full(
    bootstrap: str, total: int, workdir: Path, expected_path: Path, timeout: float,
    catalog: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """``bench/quix_full.py`` (the worker's whole job in quixstreams) on the same topic,
    then the worker's verifier on the ClickHouse data it wrote."""
    python = ensure_quix_venv()
    data = workdir / "quix-full-data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "bench.quix_full", "--bootstrap", bootstrap,
            "--expect", str(total), "--expect-catalog", str(catalog), "--data-dir", str(data),
            "--state-dir", str(workdir / "quix-full-state")]  # fmt: skip
    peer = Child("quixstreams-full", argv, workdir / "quix-full.log")
    sampler = ProcSampler(peer.pid, interval=0.2).start()
    try:
        peer.wait_for("BENCH-RESULT ", timeout)
        line = next(x for x in peer.log_text().splitlines() if x.startswith("BENCH-RESULT "))
        result: dict[str, Any] = json.loads(line[len("BENCH-RESULT ") :])
        sampler.sample()
        # It stops by itself once everything is written; the verifier needs the data
        # dir (one process per embedded engine), so wait for it to exit.
        try:
            peer.process.wait(60)
        except subprocess.TimeoutExpired:
            say("quixstreams full peer did not exit in 60 s: stopping it")
    finally:
        sampler.stop()
        exit_code = peer.stop()
    seconds = result["last"] - result["first"]
    result.update({
        "seconds": seconds, "events_per_s": result["messages"] / seconds,
        "cpu_s": sampler.cpu_between(result["first"], result["last"]),
        "peak_rss_mib": sampler.peak_rss_mib, "exit_code": exit_code, "data_dir": str(data),
    })  # fmt: skip
    result["verify"] = run_verify(str(data), expected_path, workdir, "verify-quix-full.log")
    return result


def ingest(
    events: int, students: int, courses: int, workdir: Path, *, profile: bool = False,
    peers: bool = True,
) -> tuple[list[Metric], dict[str, Any]]:  # fmt: skip
    """Run the ingest benchmark; return table rows and the raw numbers."""
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"ingest: generating {events:,} events over {students:,} students, {courses} courses")
    started = time.perf_counter()
    wl = generate(events, students, courses)
    total = len(wl.messages)
    expected_path = workdir / "expected.json"
    write_json(expected_path, expected_json(wl))
    say(f"ingest: {total:,} messages ({total - events:,} duplicates) in "
        f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    broker = start_broker(workdir / "broker.log")
    raw: dict[str, Any] = {"events": events, "students": students, "messages": total}
    try:
        produce_catalog(broker.bootstrap_servers, wl.catalog)
        count, seconds = produce_all(broker.bootstrap_servers, wl.messages)
        raw["produce"] = {"messages": count, "seconds": seconds}
        say(f"ingest: produced {count:,} in {seconds:.1f} s; running the worker")
        timeout = 120 + total / 1000
        raw["worker"] = run_worker(broker.bootstrap_servers, total, workdir, profile, timeout)
        say(f"ingest: worker {raw['worker']['events_per_s']:,.0f} ev/s; verifying")
        raw["verify"] = run_verify(raw["worker"]["data_dir"], expected_path, workdir)
        if peers:
            say("ingest: bare Faust counter")
            raw["ceiling"] = run_counter(broker.bootstrap_servers, total, workdir, timeout)
            say(f"ingest: ceiling {raw['ceiling']['events_per_s']:,.0f} ev/s; quixstreams")
            raw["quix"] = run_quix(broker.bootstrap_servers, total, wl, workdir, timeout)
            say(f"ingest: quixstreams {raw['quix']['events_per_s']:,.0f} ev/s; "
                "quixstreams, full rules + ClickHouse sink")  # fmt: skip
            raw["quix_full"] = run_quix_full(
                broker.bootstrap_servers, total, workdir, expected_path, timeout,
                catalog=len(wl.catalog),
            )  # fmt: skip
            say(f"ingest: quixstreams full {raw['quix_full']['events_per_s']:,.0f} ev/s")
    finally:
        broker.stop()
    write_json(workdir / "ingest.json", raw)
    return ingest_metrics(raw), raw


def ingest_metrics(raw: dict[str, Any]) -> list[Metric]:
    w, v = raw["worker"], raw["verify"]
    full_size = raw["students"] >= 100_000
    size = f"{raw['events'] / 1e6:g}M ev / {raw['students'] / 1e3:g}k students"
    rows = [
        Metric(f"ingest: worker events/s ({size}, {raw['messages']:,} msgs)",
               f"{w['events_per_s']:,.0f}", "≥ 10,000", w["events_per_s"] >= 10_000),
    ]  # fmt: skip
    ceiling, quix = raw.get("ceiling"), raw.get("quix")
    if ceiling:
        ratio = w["events_per_s"] / ceiling["events_per_s"]
        rows += [
            Metric("ingest: bare Faust counter (ceiling), same run",
                   f"{ceiling['events_per_s']:,.0f}", REFERENCE["ceiling"], None),
            Metric("ingest: worker / ceiling", f"{ratio:.1%}", "≥ 70 %", ratio >= 0.7),
        ]  # fmt: skip
    if quix:
        quix_ok = quix["bad_points"] == 0 and quix["bad_minutes"] == 0
        rows += [
            Metric("ingest: quixstreams, points + minutes only (the reference aggregation), "
                   "events/s", f"{quix['events_per_s']:,.0f}", "worker must be ahead",
                   w["events_per_s"] > quix["events_per_s"]),
            Metric("ingest: quixstreams results correct",
                   f"{quix['bad_points']} points / {quix['bad_minutes']} minutes mismatches "
                   f"of {quix['students']:,} students", "0", quix_ok),
            Metric("ingest: quixstreams CPU s (µs/msg)", _cpu_text(quix, raw["messages"]), "",
                   None),
        ]  # fmt: skip
    full = raw.get("quix_full")
    if full:
        rows += [
            Metric("ingest: quixstreams, full rules + ClickHouse sink, events/s",
                   f"{full['events_per_s']:,.0f}", "worker must be ahead",
                   w["events_per_s"] > full["events_per_s"]),
            Metric("ingest: quixstreams full results correct", _verified_text(full["verify"]),
                   "all equal (testkit/reference.py)", _verified_ok(full["verify"])),
            Metric("ingest: quixstreams full CPU s (µs/msg)", _cpu_text(full, raw["messages"]),
                   "", None),
        ]  # fmt: skip
    rows += [
        Metric("ingest: worker results correct", _verified_text(v),
               "all equal (testkit/reference.py)", _verified_ok(v)),
        Metric("ingest: worker CPU s during ingest (µs/msg)", _cpu_text(w, raw["messages"]),
               "ceiling ~80 µs/ev of Faust consumer path (measured bare)", None),
        Metric("ingest: worker events/s if that CPU were spread over all cores",
               f"{_cores_bound(w, raw['messages']):,.0f} ({os.cpu_count()} cores)",
               "the most any split over threads or processes could reach", None),
        Metric("ingest: worker peak RSS", f"{w['peak_rss_mib']:,.0f} MiB", "", None),
        Metric(f"memory: worker RSS with {raw['students'] / 1e3:g}k students of state",
               f"{w['rss_end_mib']:,.0f} MiB (start {w['rss_start_mib']:,.0f}; median of the "
               f"second half {w['rss_median_late_mib']:,.0f})",
               "≤ 1 GiB for 100k" + ("" if full_size else " (not judged at this size)"),
               w["rss_end_mib"] <= 1024 if full_size else None),
        Metric("ingest: reference, naive Faust agent (3 tables)", "", REFERENCE["naive_faust"],
               None),
        Metric("ingest: reference, plain confluent loop", "", REFERENCE["plain_loop"], None),
    ]  # fmt: skip
    if ceiling:
        rows.insert(
            2,
            Metric("ingest: ceiling CPU s (µs/msg)", _cpu_text(ceiling, raw["messages"]), "", None),
        )
    return rows


def _verified_ok(v: dict[str, Any]) -> bool:
    """``bench.verify_ingest`` found every event once and every student's numbers equal."""
    return (
        v["bad_points"] == 0 and v["bad_minutes"] == 0 and v["bad_sample_count"] == 0
        and v["rows_final"] == v["expected_unique"]
    )  # fmt: skip


def _verified_text(v: dict[str, Any]) -> str:
    return (f"{v['rows_final']:,}/{v['expected_unique']:,} events; {v['bad_points']} points, "
            f"{v['bad_minutes']} minutes mismatches of {v['students']:,}; "
            f"{v['bad_sample_count']} of {2 * v['sample_students']} dashboards differ")  # fmt: skip


def _cpu_text(run: dict[str, Any], messages: int) -> str:
    """A run's CPU seconds from its first to its last event, and per message."""
    return f"{run['cpu_s']:.1f} s ({run['cpu_s'] / messages * 1e6:.0f} µs)"


def _cores_bound(run: dict[str, Any], messages: int) -> float:
    """Events/s if the run's CPU per message were spread perfectly over every core."""
    return (os.cpu_count() or 1) * messages / run["cpu_s"] if run["cpu_s"] else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/eduknit-bench/ingest"))
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    parser.add_argument("--no-peers", action="store_true", help="skip ceiling and quixstreams")
    args = parser.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    metrics, _ = ingest(args.events, args.students, args.courses, args.workdir,
                        profile=args.profile, peers=not args.no_peers)  # fmt: skip
    print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
