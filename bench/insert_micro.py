"""Micro-benchmark of the worker's ClickHouse write, alone and against a busy GIL.

``python -m bench.insert_micro [--batch 1200] [--events 60000]`` processes a random
stream (``bench.processor_micro``) into batches like the ingest benchmark's (about
one event per student per batch), then writes every batch's rows into a fresh
embedded engine per mode (``MODES``): clickhouse-connect's ``raw_insert`` of JSON
lines (the chdb backend writes the block to a temporary file and inserts ``FROM
INFILE``); the embedded sink's Arrow files encoded by the writing thread
(``ClickHouseSink.write``); and the same prepared ahead, as the worker's loop does,
with only ``ClickHouseSink.send`` timed. Each once alone and once while another
Python thread keeps the GIL busy, as the worker's event loop does while the
previous batch is written. Prints wall milliseconds per batch.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import tempfile
import threading
import time

from bench.processor_micro import EmptyStore, stream
from infra.clickhouse import shared_client
from streams.housekeeping import GC_YOUNG_THRESHOLD
from streams.prepared_write import close_all
from streams.processor import EventProcessor
from streams.sink import ClickHouseSink

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
# (label, embedded-engine inserts, rows encoded before the timed write)
MODES = (
    ("temp-file insert (JSON lines)", False, False),
    ("embedded, encoded by the writer", True, False),
    ("embedded, prepared ahead (worker)", True, True),
)


class BusyLoop:
    """A thread running Python code without pause (holds the GIL most of the time)."""

    def __init__(self) -> None:
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        total = 0
        while self.running:
            total += sum(range(100))

    def __enter__(self) -> BusyLoop:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.running = False
        self.thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1200)
    args = parser.parse_args(argv)
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)  # as the worker
    messages = stream(args.events, args.students)
    processor = EventProcessor(EmptyStore())
    batches = [
        processor.process(messages[i : i + args.batch], NOW, i + 1).tables
        for i in range(0, len(messages), args.batch)
    ]
    print(f"{len(batches)} batches of {args.batch} events, {args.students} students")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as data:
        client = shared_client(f"chdb://{data}")
        for busy in (False, True):
            for mode, inline, ahead in MODES:
                sink = ClickHouseSink(client, embedded_engine=inline)
                if ahead:  # encoded by the loop before the write: only the engine call is timed
                    prepared = [sink.prepare(tables) for tables in batches]
                started = time.perf_counter()
                with BusyLoop() if busy else contextlib.nullcontext():
                    if ahead:
                        for write in prepared:
                            sink.send(write)
                    else:
                        for tables in batches:
                            sink.write(tables)
                per_batch = (time.perf_counter() - started) / len(batches) * 1000
                if ahead:
                    close_all(prepared)
                load = "busy GIL" if busy else "idle    "
                print(f"{mode:34s} {load}: {per_batch:6.1f} ms per batch (wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
