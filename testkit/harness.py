"""Tools of the fault tests: a stack whose parts can be killed, producers that retry.

``FaultStack`` is the integration ``Stack`` (``python -m eduknit.cli run``: a
supervisor owning the embedded broker and a ``serve`` child running the Faust
worker and the API) with handles on its processes: the ``serve`` child and the
broker are found by PID under the supervisor (``/proc``), killed with any
signal, and waited for until the supervisor has restarted them. It switches
the simulated ClickHouse outage (``infra.faults``, ``EDUKNIT_FAULTS=1``), reads
``/metrics`` and the worker group's committed offsets.

``RetryingProducer`` remembers every event it sent, per student, and can send
them all again: the model of backend producers re-sending what was not
acknowledged or what a memory-only broker lost (re-sending is safe by design).
``Streamer`` sends events from a thread at a steady rate while a test injects
faults. ``all_match`` compares every student's dashboards with the reference.

Every process is stopped by PID; loops are bounded by deadlines.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from infra import faults
from testkit.compare import Catalog, check_student, wait_for_match
from testkit.stack import Stack

Event = dict[str, Any]
READY_MARK = b"[^Worker]: Ready"
WORKER_GROUP = "eduknit-worker"


def children(pid: int) -> list[int]:
    """PIDs of the direct children of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(") ")[-1][:1] != "Z"
    return True


class FaultStack(Stack):
    """A ``Stack`` with fault injection enabled and its processes at hand."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        super().__init__(data_dir, **{"EDUKNIT_FAULTS": "1", **env})

    def __enter__(self) -> FaultStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clickhouse_down(False)
        self.stop()

    # -------------------------------------------------------------- processes
    @property
    def supervisor_pid(self) -> int:
        assert self.process is not None, "the stack is not running"
        return self.process.pid

    def _child(self, needle: str) -> int | None:
        for pid in children(self.supervisor_pid):
            if needle in cmdline(pid) and alive(pid):
                return pid
        return None

    def serve_pid(self) -> int:
        """PID of the worker+API process (the supervisor's ``serve`` child)."""
        pid = self._child("eduknit.cli serve")
        assert pid is not None, f"no serve process:\n{self.log_tail()}"
        return pid

    def broker_pid(self) -> int:
        pid = self._child("tansu")
        assert pid is not None, f"no embedded broker:\n{self.log_tail()}"
        return pid

    def ready_count(self) -> int:
        """How many times a Faust worker got ready since this stack's log began."""
        return self.log_path.read_bytes().count(READY_MARK)

    def kill_worker(
        self,
        sig: int = signal.SIGKILL,
        timeout: float = 90.0,
        after_kill: Callable[[], None] | None = None,
    ) -> float:
        """Kill the worker+API process; wait until the supervisor's new one is ready.

        ``after_kill`` runs right after the signal (e.g. to end an outage before
        the restart). Returns the seconds from the kill to the new worker being ready.
        """
        readies = self.ready_count()
        old = self.serve_pid()
        killed_at = time.monotonic()
        os.kill(old, sig)
        if after_kill is not None:
            after_kill()
        deadline = killed_at + timeout
        while True:
            pid = self._child("eduknit.cli serve")
            if pid not in (None, old) and self.ready_count() > readies and self.ready():
                return time.monotonic() - killed_at
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"the supervisor exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not back in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def kill_broker(self, timeout: float = 60.0) -> float:
        """SIGKILL the embedded broker; wait until a fresh one answers; return the seconds."""
        old = self.broker_pid()
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        deadline = killed_at + timeout
        while True:
            pid = self._child("tansu")
            if pid not in (None, old) and self.ready():
                return time.monotonic() - killed_at
            if time.monotonic() > deadline:
                raise AssertionError(f"broker not back in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    # ------------------------------------------------------------ observation
    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def clickhouse_down(self, down: bool, writes_only: bool = False) -> None:
        """Start or end the simulated ClickHouse outage (``infra.faults``)."""
        faults.set_clickhouse_down(self.data_dir.resolve(), down, writes_only=writes_only)
        if not down and not writes_only:
            faults.set_clickhouse_down(self.data_dir.resolve(), False, writes_only=True)

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value} (samples summed per line)."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def metric_sum(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            if all(found.get(k) == v for k, v in labels.items()):
                total += value
        return total

    def committed(self, topic: str = "learning-events", partitions: int = 4) -> dict[int, int]:
        """The worker group's committed offsets per partition (-1001 = none)."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": WORKER_GROUP})
        try:
            tps = consumer.committed(
                [TopicPartition(topic, p) for p in range(partitions)], timeout=10
            )
            return {tp.partition: tp.offset for tp in tps}
        finally:
            consumer.close()


class RetryingProducer:
    """Sends events keyed by studentId and keeps them, to re-send after a loss."""

    def __init__(self, bootstrap: str, **config: Any) -> None:
        self.producer = KafkaProducer({
            "bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
            "message.timeout.ms": 30000, **config,
        })  # fmt: skip
        self.sent: dict[str, list[Event]] = {}
        self.messages = 0
        self.failed = 0
        self.lock = threading.Lock()

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            with self.lock:
                self.failed += 1

    def send(self, event: Event) -> None:
        with self.lock:
            self.sent.setdefault(event["studentId"], []).append(event)
            self.messages += 1
        self._produce("learning-events", event["studentId"].encode(), orjson.dumps(event))

    def send_raw(self, value: bytes, key: str | None) -> None:
        """A message that is not (or not only) a valid event: not kept for the reference."""
        self._produce("learning-events", key.encode() if key else None, value)

    def course(self, course_id: str, title: str, total: int) -> None:
        entry = {"courseId": course_id, "title": title, "totalLessons": total}
        self._produce("course-catalog", course_id.encode(), orjson.dumps(entry))

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        for _ in range(200):  # bounded: the local queue drains in well under 20 s
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def resend_all(self, rng: random.Random | None = None) -> int:
        """Send every event again (shuffled when ``rng``); return how many."""
        with self.lock:
            everything = [e for events in self.sent.values() for e in events]
        if rng is not None:
            rng.shuffle(everything)
        for event in everything:
            self.send(event)
        return len(everything)

    def flush(self, timeout: float = 60.0) -> None:
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} messages not delivered"

    def unique(self) -> int:
        return len({e["eventId"] for events in self.sent.values() for e in events})


class Streamer:
    """Sends a list of events from a thread at ``rate`` events/s until done or stopped.

    ``rate`` may be changed while it runs; 0 sends as fast as the producer takes them.
    """

    def __init__(self, producer: RetryingProducer, events: list[Event], rate: float) -> None:
        self.producer = producer
        self.events = events
        self.rate = rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamer", daemon=True)

    def _run(self) -> None:
        next_at = time.monotonic()
        for index, event in enumerate(self.events):
            if self._stop.is_set():
                return
            if self.rate > 0:
                next_at = max(next_at + 1 / self.rate, time.monotonic() - 1)
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self.producer.send(event)
            self.sent = index + 1

    def __enter__(self) -> Streamer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the streamer did not finish in time"

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


def differences(stack: Stack, sent: dict[str, list[Event]], catalog: Catalog) -> list[str]:
    """Every difference between the API's dashboards and the reference, all students."""
    problems: list[str] = []
    for student, events in sent.items():
        problems += check_student(stack, student, events, catalog)
    return problems


def all_match(
    stack: Stack, sent: dict[str, list[Event]], catalog: Catalog, timeout: float = 90.0
) -> None:
    """Wait until every student's dashboards equal the reference; fail with the diff."""
    wait_for_match(lambda: differences(stack, sent, catalog), timeout=timeout, interval=1.0)


def interleave(rng: random.Random, histories: dict[str, list[Event]]) -> list[Event]:
    """All students' events in one shuffled stream (late, out-of-order arrival)."""
    everything = [e for events in histories.values() for e in events]
    rng.shuffle(everything)
    return everything


def now_event(student: str, course: str, **fields: Any) -> Event:
    """A lesson completion happening now, with a fresh eventId."""
    import datetime as dt

    return {
        "eventId": f"{student}-now-{uuid.uuid4().hex[:8]}", "type": "lesson_progress",
        "studentId": student, "courseId": course, "lessonId": "l-now", "completed": True,
        "timeSpent": 5, "occurredAt": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        **fields,
    }  # fmt: skip


@contextlib.contextmanager
def running(stack: FaultStack) -> Iterator[FaultStack]:
    """Start ``stack`` and stop it by PID afterwards, also when the test fails."""
    stack.start()
    try:
        yield stack
    finally:
        stack.clickhouse_down(False)
        stack.stop()
