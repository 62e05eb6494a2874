"""SIGKILL of the worker while events flow: nothing lost, nothing counted twice.

The ``serve`` process (Faust worker + API) is killed with SIGKILL twice at random
points while a producer streams shuffled, duplicated histories; the supervisor
restarts it each time. The restarted worker re-reads what was not acknowledged,
and every student's dashboards end up equal to the reference.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

import pytest

from testkit.harness import (
    FaultStack,
    RetryingProducer,
    Streamer,
    all_match,
    interleave,
    running,
)
from testkit.history import delivery_order, student_history

pytestmark = pytest.mark.integration

COURSES = ["k-knit", "k-crochet", "k-dye"]
CATALOG = {"k-knit": ("Knitting", 6), "k-crochet": ("Crochet", 4)}


def test_worker_sigkill_mid_stream(tmp_path: Path) -> None:
    rng = random.Random(3101)
    now = dt.datetime.now(dt.UTC)
    histories = {
        f"k-{i:02d}": student_history(rng, f"k-{i:02d}", COURSES, now, 12) for i in range(12)
    }
    stream = interleave(rng, {s: delivery_order(rng, events) for s, events in histories.items()})
    with running(FaultStack(tmp_path, EDUKNIT_BATCH_MAX_EVENTS="50")) as stack:
        producer = RetryingProducer(stack.bootstrap)
        for course, (title, total) in CATALOG.items():
            producer.course(course, title, total)
        with Streamer(producer, stream, rate=len(stream) / 16) as streamer:
            for kill in range(2):
                time.sleep(rng.uniform(0.5, 2.5))
                if kill == 0:
                    assert not streamer.done, "the stream ended before the kill"
                stack.kill_worker()
            streamer.wait(60)
        producer.flush()
        all_match(stack, producer.sent, CATALOG)
