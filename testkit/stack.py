"""The whole pipeline as a user runs it, for integration tests.

``Stack`` starts ``python -m eduknit.cli run`` (embedded broker, Faust worker,
embedded ClickHouse, API) as a child process on free loopback ports and a data
directory of the test's, waits until ``/readyz`` answers 200, and stops it by
PID. ``Producer`` sends events to its broker the way backend producers do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer as KafkaProducer

from infra.broker import free_port
from infra.tokens import make_token

ROOT = Path(__file__).resolve().parents[1]  # the repository (testkit/ is at its top)
SECRET = "integration-test-secret-0123456789abcdef"


class Stack:
    """One ``eduknit.cli run`` process with its ports and data directory."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.extra_env = env
        self.kafka_port = free_port()
        self.api_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "stack.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def bootstrap(self) -> str:
        return self.extra_env.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{self.kafka_port}"

    def start(self, timeout: float = 90.0) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "EDUKNIT_DATA_DIR": str(self.data_dir),
            "EDUKNIT_KAFKA_PORT": str(self.kafka_port), "EDUKNIT_API_PORT": str(self.api_port),
            "EDUKNIT_JWT_SECRET": SECRET, "EDUKNIT_PARTITIONS": "4",
        }  # fmt: skip
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        env.pop("CLICKHOUSE_URL", None)
        env.update(self.extra_env)  # e.g. KAFKA_BOOTSTRAP_SERVERS of a broker the test owns
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eduknit.cli", "run"], cwd=ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"stack exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"stack not ready in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.wait_worker_ready(deadline)
        return self

    def wait_worker_ready(self, deadline: float) -> None:
        """Wait until the Faust worker joined its group (it logs 'Worker: Ready')."""
        while b"[^Worker]: Ready" not in self.log_path.read_bytes().split(b"stack-start")[-1]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with open(self.log_path, "ab") as log:
            log.write(b"\n--- stack-start marker: stopped ---\nstack-start\n")
        return process.returncode

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def token(self, student_id: str, role: str = "student", ttl: float = 3600) -> str:
        return make_token(SECRET, student_id, role=role, ttl_seconds=ttl)

    def get(self, path: str, student_id: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(student_id)}"}
        return httpx.get(f"{self.base_url}{path}", params=params, headers=headers, timeout=30)


class Producer:
    """Sends events and catalog entries to a stack's broker, keyed as docs/api.md says."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def event(self, event: dict[str, Any] | bytes, key: str | None = None) -> None:
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        if key is None and isinstance(event, dict):
            key = str(event.get("studentId", ""))
        self.producer.produce("learning-events", key=key.encode() if key else None, value=value)

    def course(
        self, course_id: str, title: str, total: int, lessons: list[str] | None = None
    ) -> None:
        entry: dict[str, Any] = {"courseId": course_id, "title": title, "totalLessons": total}
        if lessons is not None:
            entry["lessons"] = lessons
        self.producer.produce("course-catalog", key=course_id.encode(), value=orjson.dumps(entry))

    def flush(self) -> None:
        left = self.producer.flush(30)
        assert left == 0, f"{left} messages not delivered"
