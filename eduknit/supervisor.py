"""``make run``: supervise the embedded broker and the worker+API process.

The supervisor owns the embedded broker (restarting a fresh one, with its
topics, if it dies) and runs ``eduknit.cli serve`` — the Faust worker and the API
in one process, because the embedded ClickHouse allows one process per data
directory — as a child. A child that exits unexpectedly is restarted with
backoff (its unacknowledged events are re-read and counted once). A child that
exits with ``EXIT_FATAL`` (a broken input stream, see ``streams.guard``) or that
never got ready the first time stops everything with its exit code.

SIGTERM/SIGINT stop the child (SIGTERM, SIGKILL after a grace period), then the
broker. Both children die with the supervisor (PR_SET_PDEATHSIG), so nothing
outlives it even after a SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from infra.broker import EmbeddedBroker, die_with_parent
from infra.settings import Settings
from infra.topics import ensure_topics
from streams.guard import EXIT_FATAL  # the child asks not to be restarted

log = logging.getLogger("eduknit.supervisor")

READY_TIMEOUT = 120.0
STOP_GRACE = 30.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a child that ran this long (or got ready) resets the backoff


class Supervisor:
    """Keeps the broker and the ``serve`` child running until told to stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker: EmbeddedBroker | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.restarts = 0

    # ---------------------------------------------------------------- signals
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    # ----------------------------------------------------------------- broker
    def _start_broker(self) -> None:
        s = self.settings
        if s.embedded_broker:
            s.data_path.mkdir(parents=True, exist_ok=True)
            self.broker = EmbeddedBroker(s.kafka_port, log_path=s.data_path / "broker.log").start()
        ensure_topics(s.bootstrap_servers, s.partitions)

    def _broker_alive(self) -> bool:
        return self.broker is None or (
            self.broker.process is not None and self.broker.process.poll() is None
        )

    # ------------------------------------------------------------------ child
    def _start_child(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers}
        env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
        return subprocess.Popen(  # own session: Ctrl-C reaches the supervisor, which stops it
            [sys.executable, "-m", "eduknit.cli", "serve"], env=env, preexec_fn=die_with_parent,
            start_new_session=True,
        )  # fmt: skip

    def _api_up(self) -> bool:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/healthz"
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _stop_child(self) -> int | None:
        child, self.child = self.child, None
        if child is None:
            return None
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker/API (pid %d) did not stop in %.0f s: killing", child.pid, STOP_GRACE
                )
                child.kill()
                child.wait()
        return child.returncode

    # ------------------------------------------------------------------- loop
    def run(self) -> int:
        """Run until SIGTERM/SIGINT or a fatal child exit; return the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._start_broker()
            return self._supervise()
        finally:
            self._stop_child()
            if self.broker is not None:
                self.broker.stop()

    def _supervise(self) -> int:
        backoff = 1.0
        ever_ready = False
        while not self.stopping:
            self.child = self._start_child()
            started = time.monotonic()
            ready = False
            while not self.stopping:
                code = self.child.poll()
                if code is not None:
                    break
                if not ready and self._api_up():
                    ready = ever_ready = True
                    log.info(
                        "EduKnit Learn is up: API http://%s:%d (docs at /docs), Kafka %s",
                        self.settings.api_host, self.settings.api_port,
                        self.settings.bootstrap_servers,
                    )  # fmt: skip
                if not ready and time.monotonic() - started > READY_TIMEOUT and not ever_ready:
                    log.error("worker/API did not get ready in %.0f s", READY_TIMEOUT)
                    return 1
                if not self._broker_alive():
                    log.error("the embedded broker died: starting a fresh one")
                    self._start_broker()
                time.sleep(0.2)
            if self.stopping:
                break
            code = self.child.returncode
            self.child = None
            if code == EXIT_FATAL:
                log.critical("worker stopped on a fatal condition (exit %d): not restarting", code)
                return EXIT_FATAL
            if not ever_ready:
                log.error("worker/API exited with code %s before it was ready", code)
                return code or 1
            if ready or time.monotonic() - started > STABLE_AFTER:
                backoff = 1.0  # it was serving: a crash, not a crash loop
            self.restarts += 1
            log.error(
                "worker/API exited with code %s: restart %d in %.0f s", code, self.restarts, backoff
            )
            deadline = time.monotonic() + backoff
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.2)
            backoff = min(backoff * 2, MAX_BACKOFF)
        return 0
