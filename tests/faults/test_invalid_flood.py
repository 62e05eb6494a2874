"""The invalid-ratio guard on the real stack: a broken producer stops the worker loudly.

A few invalid events among valid ones go to the DLQ and the worker keeps
running. A flood of invalid events (a broken producer deploy) makes the
worker log CRITICAL with the counts and exit with ``EXIT_FATAL``; the
supervisor then stops instead of restarting it, and the batch that tripped the
guard is not acknowledged: once the limit is raised, a restarted stack re-reads
it and counts the valid events sent after the flood. The broker is the test's
own here, so that it outlives the stopped stack.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from infra.broker import EmbeddedBroker
from streams.guard import EXIT_FATAL
from testkit.harness import FaultStack, RetryingProducer, all_match, now_event, running

pytestmark = pytest.mark.integration

GUARD = {
    "EDUKNIT_INVALID_WINDOW": "200",
    "EDUKNIT_INVALID_MIN_COUNT": "50",
    "EDUKNIT_MAX_INVALID_RATIO": "0.5",
}


def test_flood_of_invalid_events_stops_the_worker(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    students = [f"flood-{run}-{i}" for i in range(5)]
    with EmbeddedBroker(log_path=tmp_path / "own-broker.log") as broker:
        env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, **GUARD}
        stack = FaultStack(tmp_path / "stack", **env)
        with running(stack):
            producer = RetryingProducer(stack.bootstrap)
            # A few invalid ones (10 %): dead-lettered, the stream goes on.
            for index in range(150):
                producer.send(now_event(students[index % 5], "c-flood", lessonId=f"l{index}"))
                if index % 10 == 0:
                    producer.send_raw(b"{broken", key=students[index % 5])
            producer.flush()
            all_match(stack, producer.sent, {})
            serve = stack.serve_pid()
            assert stack.metric_sum("eduknit_events_invalid_total") == 15
            assert stack.serve_pid() == serve

            # A broken deploy: 300 invalid, then valid events again.
            for index in range(300):
                producer.send_raw(b'{"type": "lesson_progress"}', key=students[index % 5])
            after = [now_event(s, "c-flood", lessonId="after") for s in students]
            for event in after:
                producer.send(event)
            producer.flush()
            assert stack.process is not None
            code = stack.process.wait(60)
            log = stack.log_path.read_text(errors="replace")
            assert code == EXIT_FATAL, stack.log_tail()
            verdict = re.search(r"CRITICAL\]? .*invalid-ratio guard: (\d+) of the last (\d+)", log)
            assert verdict, stack.log_tail()
            invalid, window = int(verdict[1]), int(verdict[2])
            assert window == 200 and invalid > 100
            assert "not restarting" in log
            committed = sum(max(offset, 0) for offset in stack.committed().values())
            assert committed < producer.messages + 15 + 300  # the tripping batch is not acked

        # The limit raised (the operator's fix): the unacknowledged rest is re-read.
        stack = FaultStack(tmp_path / "stack", **{**env, "EDUKNIT_MAX_INVALID_RATIO": "1"})
        with running(stack):
            all_match(stack, producer.sent, {})
            assert stack.serve_pid()  # the worker runs on
