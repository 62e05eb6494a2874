"""Rows to ClickHouse until they are taken: encoding on the loop, sending on a thread, retrying.

``RetryingWriter`` encodes a write's rows on the event loop's thread
(``ClickHouseSink.prepare``, so the writer thread only calls the engine; see
``streams.prepared_write`` for why), sends prepared writes in order on the
executor, and retries a failed attempt with backoff (0.2 s doubling to 10 s)
for as long as it takes: the same rows each time, so a retried insert is
idempotent (the tables deduplicate by version). ``sink_error`` holds the last
failure while ClickHouse is failing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streams import metrics
from streams.prepared_write import PreparedWrite, close_all
from streams.rows import Row
from streams.sink import ClickHouseSink

log = logging.getLogger("eduknit.worker")

T = TypeVar("T")


class RetryingWriter:
    """Writes to ClickHouse through ``sink``, retrying until they are taken (see the module)."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink
        self.sink_error: str | None = None

    def prepare(self, *writes: dict[str, list[Row]]) -> list[PreparedWrite]:
        """Encode each write's rows, here on the loop's thread."""
        prepared: list[PreparedWrite] = []
        try:
            prepared.extend(self.sink.prepare(tables) for tables in writes)
        except BaseException:
            close_all(prepared)
            raise
        return prepared

    async def write(self, *writes: dict[str, list[Row]]) -> None:
        """Write until ClickHouse took the rows, in order."""
        await self.send(self.prepare(*writes))

    async def send(self, prepared: list[PreparedWrite]) -> None:
        """Send ``prepared`` until ClickHouse took them all, in order, retrying with
        backoff; closes them when done."""
        loop = asyncio.get_running_loop()
        sending: asyncio.Future[None] | None = None

        def send_all() -> None:
            for write in prepared:
                self.sink.send(write)

        async def attempt() -> None:
            nonlocal sending
            sending = loop.run_in_executor(None, send_all)
            await asyncio.shield(sending)  # cancelled or not, the thread runs to its end

        try:
            await self.retrying("write", attempt, (Exception,))
        finally:
            if sending is None or sending.done():
                close_all(prepared)
            else:  # cancelled mid-write: the engine may still be reading the files
                sending.add_done_callback(lambda _: close_all(prepared))
        metrics.SINK_WRITES.inc(len(prepared))
        for write in prepared:
            for table, count in write.tables.items():
                metrics.ROWS_WRITTEN.labels(table).inc(count)

    async def retrying(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        errors: tuple[type[BaseException], ...],
    ) -> T:
        """``attempt()`` until it succeeds, backing off 0.2 s doubling to 10 s between failures."""
        delay = 0.2
        while True:
            try:
                result = await attempt()
            except errors as exc:  # ClickHouse down or refusing
                metrics.SINK_FAILURES.inc()
                metrics.SINK_FAILING.set(1)
                self.sink_error = str(exc)
                log.warning("ClickHouse %s failed (retrying in %.1f s): %s", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self.sink_error is not None:
                log.info("ClickHouse %ss recovered", what)
                self.sink_error = None
                metrics.SINK_FAILING.set(0)
            return result
