"""The peer: the same aggregation written with quixstreams (runs in ``bench/.venv-quix``).

``bench/.venv-quix/bin/python bench/quix_agg.py --bootstrap HOST:PORT --expect N --out F``
consumes ``learning-events`` from the beginning and keeps, per student in
quixstreams' keyed RocksDB state (with its changelog topic, at-least-once):
the event ids seen (dedup), first lesson completions and best quiz scores
(points, docs/api.md § Metric rules) and minutes per learner-local day. Each counted event's new
totals go to a batching sink (the peer of the worker's ClickHouse sink) that
keeps the latest values per student and day. When the sink has received all
``N`` messages it writes ``{"points": {...}, "minutes": {...}, "first", "last"}``
to ``--out`` and the app stops. It imports nothing from the project (its own
virtualenv: quixstreams needs confluent-kafka<2.13).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(event: dict[str, Any]) -> str:
    at = dt.datetime.fromisoformat(event["occurredAt"].replace("Z", "+00:00"))
    if event.get("timezone"):
        at = at.astimezone(_zone(event["timezone"]))
    return at.date().isoformat()


def aggregate(event: dict[str, Any], state: Any) -> dict[str, Any]:
    """Apply one event to the student's state; return the new totals (or a duplicate mark)."""
    seen_key = "id:" + event["eventId"]
    if state.get(seen_key):
        return {"dup": True}
    state.set(seen_key, 1)
    kind, course = event["type"], event["courseId"]
    points = state.get("points", 0)
    out: dict[str, Any] = {"s": event["studentId"]}
    if kind == "lesson_progress" and event.get("completed"):
        lesson_key = f"l:{course}:{event['lessonId']}"
        if not state.get(lesson_key):
            state.set(lesson_key, 1)
            points += 10
    elif kind == "quiz_completed":
        quiz_key = f"q:{course}:{event['quizId']}"
        best = state.get(quiz_key, 0.0)
        if event["score"] > best:
            points += math.floor(event["score"] / 10) - math.floor(best / 10)
            state.set(quiz_key, event["score"])
    state.set("points", points)
    out["points"] = points
    if kind in ("lesson_progress", "quiz_completed"):
        day = local_day(event)
        minutes_key = "m:" + day
        minutes = state.get(minutes_key, 0.0) + float(event.get("timeSpent", 0))
        state.set(minutes_key, minutes)
        out["day"], out["minutes"] = day, minutes
    return out


class LatestSink(BatchingSink):
    """Keeps the latest totals per student and day; stops the app after ``expect`` messages."""

    def __init__(self, app: Application, expect: int, out: str, started: dict[str, float]):
        super().__init__()
        self.app, self.expect, self.out, self.started = app, expect, out, started
        self.points: dict[str, int] = {}
        self.minutes: dict[str, dict[str, float]] = {}
        self.received = 0
        self.done = False

    def write(self, batch: SinkBatch) -> None:
        for item in batch:
            self.received += 1
            value = item.value
            if value.get("dup"):
                continue
            sid = value["s"]
            self.points[sid] = value["points"]
            if "day" in value:
                self.minutes.setdefault(sid, {})[value["day"]] = value["minutes"]
        if self.received >= self.expect and not self.done:
            self.done = True
            last = time.time()
            with open(self.out, "w") as f:
                json.dump({"points": self.points, "minutes": self.minutes,
                           "first": self.started["first"], "last": last,
                           "received": self.received}, f)  # fmt: skip
            print(f"BENCH-RESULT {self.received} messages in "
                  f"{last - self.started['first']:.2f} s", flush=True)  # fmt: skip
            self.app.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--group", default=f"bench-quix-{int(time.time())}")
    args = parser.parse_args(argv)
    app = Application(
        broker_address=args.bootstrap, consumer_group=args.group,
        auto_offset_reset="earliest", commit_interval=0.5, state_dir=args.state_dir,
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )  # fmt: skip
    topic = app.topic("learning-events", key_deserializer="str", value_deserializer="json")
    started = {"first": 0.0}

    def stamp(value: dict[str, Any]) -> dict[str, Any]:
        if not started["first"]:
            started["first"] = time.time()
        return value

    sdf = app.dataframe(topic)
    sdf = sdf.update(stamp).apply(aggregate, stateful=True)
    sdf.sink(LatestSink(app, args.expect, args.out, started))
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
