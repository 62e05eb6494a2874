"""Shared pieces of the benchmarks: result rows, the table, process sampling, children.

- ``Metric`` is one line of the final table (metric | measured | reference/target | pass?).
- ``ProcSampler`` samples a child's CPU seconds and RSS from ``/proc`` (no psutil),
  in a thread, so CPU used in a time window and peak RSS can be reported.
- ``Child`` starts a subprocess with its output in a log file and stops it by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(slots=True)
class Metric:
    """One row of the results table; ``ok`` is None for numbers without a target."""

    name: str
    measured: str
    reference: str = ""
    ok: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.name, "measured": self.measured,
                "reference": self.reference, "ok": self.ok}  # fmt: skip


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


def table(metrics: Sequence[Metric]) -> str:
    """A Markdown table of the metrics (readable in a terminal too)."""
    head = ("metric", "measured", "reference / target", "pass?")
    lines = [head] + [(m.name, m.measured, m.reference, verdict(m.ok)) for m in metrics]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def say(text: str) -> None:
    """Progress line on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc
def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` value of ``/proc/<pid>/status`` (VmRSS, VmHWM, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_rss_mib(pid: int) -> float:
    return proc_status_kib(pid, "VmRSS") / 1024


@dataclass
class ProcSampler:
    """Samples (time, cpu seconds, rss MiB) of one process every ``interval`` s."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> ProcSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            self._stop.wait(self.interval)

    def sample(self) -> tuple[float, float, float]:
        point = (time.time(), proc_cpu_seconds(self.pid), proc_rss_mib(self.pid))
        self.samples.append(point)
        self.peak_rss_mib = max(self.peak_rss_mib, proc_status_kib(self.pid, "VmHWM") / 1024)
        return point

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used between two wall-clock times (nearest samples)."""
        if not self.samples:
            return float("nan")

        def at(moment: float) -> float:
            return min(self.samples, key=lambda s: abs(s[0] - moment))[1]

        return at(end) - at(start)

    def rss_at(self, moment: float) -> float:
        if not self.samples:
            return float("nan")
        return min(self.samples, key=lambda s: abs(s[0] - moment))[2]

    def rss_median(self, start: float, end: float) -> float:
        """Median RSS MiB of the samples between two wall-clock times: steadier than
        one sample (the embedded engine's merges move RSS by ~150 MiB within seconds)."""
        inside = sorted(s[2] for s in self.samples if start <= s[0] <= end)
        return inside[len(inside) // 2] if inside else float("nan")


# --------------------------------------------------------------- children
class Child:
    """A subprocess with stdout+stderr in ``log_path``, stopped by its PID."""

    def __init__(
        self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:  # fmt: skip
        self.name = name
        self.log_path = log_path
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT
            )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for(self, needle: str, timeout: float) -> None:
        """Wait until the log contains ``needle`` (raises with the log tail otherwise)."""
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {needle!r} in {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def wait_healthy(base: str, server: Child, timeout: float = 60.0, path: str = "/healthz") -> None:
    """Wait until the API at ``base`` answers 200 at ``path``; raise with its log's tail
    when ``server`` died or ``timeout`` passed."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not server.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"API did not start:\n{server.tail()}")
        time.sleep(0.2)
