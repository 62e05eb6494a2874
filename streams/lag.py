"""The worker's consumer lag, per partition: what is in the topic and not yet committed.

``lag(end, committed)`` is the pure rule: the partition's end offset (the offset the
next message will get, as the consumer's last fetch reported it) minus the offset the
group committed (the next one it will read), clamped at 0. The embedded broker
(Tansu) can report an end offset lower than the truth (INFRA: its ListOffsets
under-reports the high watermark), which would make the lag negative: it then reads
0, so on that broker a small lag can hide; on Apache Kafka it is exact. Nothing
fetched yet: no value. ``LagReporter.update`` sets ``eduknit_consumer_lag`` for the
partitions assigned now and removes the others; the worker calls it every few
seconds. It reads the consumer's own numbers: no request to the broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams.metrics import CONSUMER_LAG


def lag(end: int | None, committed: int | None) -> int | None:
    """Messages after the committed offset, or None when the end is not known yet."""
    if end is None:
        return None
    return max(0, end - (committed or 0))


class LagReporter:
    """Keeps ``eduknit_consumer_lag`` in step with the assignment (see the module)."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self._reported: set[tuple[str, int]] = set()

    def update(
        self, assignment: Iterable[Any], end: Any, committed: Mapping[Any, int | None]
    ) -> None:
        """``assignment``: the consumer's partitions (``.topic``, ``.partition``);
        ``end(tp)``: its last fetched end offset or None; ``committed``: tp -> offset."""
        seen: set[tuple[str, int]] = set()
        for tp in assignment:
            if tp.topic not in self.topics:
                continue
            value = lag(end(tp), committed.get(tp))
            if value is None:
                continue
            key = (tp.topic, tp.partition)
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(value)
            seen.add(key)
        for topic, partition in self._reported - seen:
            CONSUMER_LAG.remove(topic, str(partition))
        self._reported = seen
