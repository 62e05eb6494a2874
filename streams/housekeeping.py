"""The worker's memory housekeeping: the garbage collector's pace and the engine's free pages.

Nothing here changes what is counted or written; it bounds the worker's RSS and
the CPU the collector takes (BENCHMARKS.md, § Memory and § Ingest).
- ``tune_garbage_collector``: the states, a batch's parsed events and its rows are
  containers without cycles that live for a batch or two: each collection of the
  young generation walked all of them (every 100k allocations: 229 collections,
  22 s of a 155 s ingest at 1M/100k). Every 1M: one collection, which found 66
  objects in cycles.
- ``EngineMemory``: the embedded engine's allocator (jemalloc) keeps the pages a
  batch's inserts freed for seconds: ~600 MiB of the worker's RSS in the
  100k-student ingest held ~80 MiB of live engine memory. A purge returns them at
  once; purging on every free instead (``dirty_decay_ms:0``) cost 13-19 % more
  CPU. The purge runs on the writer's side and nothing waits for it: awaited in
  the commit, it held the next batch back ~18 ms (10-27) once a second.
- ``after_snapshot``: the frozen states and the written batches freed memory;
  the C allocator hands it back (``infra.memory.release_free_memory``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from infra.memory import release_free_memory

log = logging.getLogger("eduknit.worker")

GC_YOUNG_THRESHOLD = 1_000_000  # net container allocations between young collections


def tune_garbage_collector() -> None:
    """Collect the young generation every ``GC_YOUNG_THRESHOLD`` allocations (see the module)."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


def after_snapshot() -> None:
    """Hand the memory a snapshot and the frozen states freed back to the system."""
    release_free_memory()


class EngineMemory:
    """Purges the embedded engine's free pages at most every ``every`` seconds."""

    def __init__(self, purge: Callable[[], None], every: float, enabled: bool) -> None:
        self.purge = purge  # the sink's ``release_engine_memory``
        self.every = every
        self.enabled = enabled and every > 0
        self._last = time.monotonic()
        self._running: asyncio.Future[None] | None = None

    def release_if_due(self, now: bool = False) -> None:
        """Start a purge on the executor when one is due (``now``: due whatever the time)
        and none is running; nothing waits for it."""
        if not self.enabled:
            return
        if self._running is not None and not self._running.done():
            return
        if not now and time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        self._running = asyncio.get_running_loop().run_in_executor(None, self._purge)

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a purge in progress (before the engine closes)."""
        if self._running is not None and not self._running.done():
            await asyncio.wait({self._running}, timeout=timeout)

    def _purge(self) -> None:
        try:
            self.purge()
        except Exception as exc:  # memory only: the next purge will do
            log.debug("engine memory purge failed: %s", exc)
