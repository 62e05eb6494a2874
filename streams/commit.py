"""The commit order of a batch of ``learning-events``, stated once.

``commit_batch`` runs after the batch was processed (its states changed, its rows
and dead letters computed, a due snapshot taken after it) and does, in order:

1. dead letters to ``learning-events-dlq`` (a rejected message is never
   acknowledged before its reason is in Kafka);
2. rows to ClickHouse: the batch's, then the snapshot's, in one trip to the
   writer thread, retried until taken (a snapshot never holds an effect that
   is not in ClickHouse before it);
3. the processor learns the batch is written (its old events are now found in
   ``learning_events``);
4. the batch's offsets are acknowledged (Faust commits them): only now;
5. memory handed back, counts and one log line.

A crash before step 4 leaves the batch unacknowledged: it is read again and the
idempotent processing counts each event once.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from schemas.dead_letter import DeadLetter
from streams import metrics
from streams.batch_consumer import Batch
from streams.prepared_write import PreparedWrite, close_all
from streams.processor import BatchResult

log = logging.getLogger("eduknit.worker")


class CommitSteps(Protocol):
    """What ``commit_batch`` calls, in its order (the worker provides them)."""

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Step 1: produce them to the dead-letter topic, acknowledged by Kafka."""
        ...

    async def send_rows(self, prepared: list[PreparedWrite]) -> None:
        """Step 2: until ClickHouse took them all, in order; closes them."""
        ...

    def written(self, result: BatchResult) -> None:
        """Step 3: the processor's record of what is in ClickHouse."""
        ...

    def acknowledge(self, batch: Batch) -> None:
        """Step 4: the batch's offsets may be committed."""
        ...

    def after_commit(self, snapshot_states: int) -> None:
        """Step 5: memory housekeeping once the batch (and a snapshot of this many
        states) is written."""
        ...


async def commit_batch(
    steps: CommitSteps,
    batch: Batch,
    result: BatchResult,
    prepared: list[PreparedWrite],
    started: float,
) -> None:
    """Commit a processed batch (see the module). ``prepared``: the batch's rows, then a
    snapshot's in chunks, encoded; closed here whatever happens. ``started``: when the
    batch's processing began (``time.perf_counter``), for its metrics."""
    processed = time.perf_counter()
    try:
        await steps.send_dead_letters(result.dead_letters)  # 1
    except BaseException:
        close_all(prepared)
        raise
    await steps.send_rows(prepared)  # 2
    steps.written(result)  # 3
    steps.acknowledge(batch)  # 4
    snapshot = sum(write.tables.get("student_state", 0) for write in prepared)
    steps.after_commit(snapshot)  # 5
    metrics.EVENTS_COUNTED.inc(result.counted)
    metrics.EVENTS_DUPLICATE.inc(result.duplicates)
    metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
    log.info(
        "batch: %d messages, %d counted, %d duplicates, %d invalid, %d students, "
        "processed in %.1f ms, written in %.1f ms",
        len(batch), result.counted, result.duplicates, len(result.dead_letters),
        len(result.students), (processed - started) * 1000,
        (time.perf_counter() - processed) * 1000,
    )  # fmt: skip
