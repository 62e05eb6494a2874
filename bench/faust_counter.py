"""The framework's ceiling: a bare Faust agent that only counts events.

``python -m bench.faust_counter --bootstrap HOST:PORT --expect N`` consumes
``learning-events`` from the beginning with its own group id and the worker's
consumer settings (poll size, buffer, session timeouts), counts events one by
one, and when ``N`` have arrived prints one line
``BENCH-RESULT {"events": N, "seconds": ..., "first": ..., "last": ...}``
(first and last are wall-clock times of the first and last event). The
harness then stops it by PID.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import faust

from schemas import events as events_schema


def build(bootstrap: str, expect: int, partitions: int, group: str, datadir: str) -> faust.App:
    app = faust.App(
        group, broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
        key_serializer="raw", value_serializer="raw", topic_partitions=partitions,
        broker_session_timeout=6, broker_heartbeat_interval=1, broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest", broker_max_poll_records=5000,
        stream_buffer_maxsize=20000, datadir=datadir,
    )  # fmt: skip
    topic = app.topic(events_schema.TOPIC, partitions=partitions)
    state = {"count": 0, "first": 0.0}

    @app.agent(topic, name="count")
    async def count(stream: faust.StreamT) -> None:
        async for _ in stream:
            if state["count"] == 0:
                state["first"] = time.time()
            state["count"] += 1
            if state["count"] == expect:
                last = time.time()
                result = {"events": expect, "seconds": last - state["first"],
                          "first": state["first"], "last": last}  # fmt: skip
                print("BENCH-RESULT " + json.dumps(result), flush=True)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--group", default=f"bench-counter-{int(time.time())}")
    args = parser.parse_args(argv)
    # Faust's data directory, removed at exit (every run used to leave one in /tmp)
    with tempfile.TemporaryDirectory(prefix=f"{args.group}-") as datadir:
        app = build(args.bootstrap, args.expect, args.partitions, args.group, datadir)
        sys.argv = [sys.argv[0]]
        faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
