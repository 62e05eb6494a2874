"""The worker's Prometheus metrics, in one commented list.

They live in the default registry, so the API's ``/metrics`` shows them when the
worker runs in the same process (``make run``); a separate worker process
exposes them on ``EDUKNIT_WORKER_METRICS_PORT`` when set.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Events counted into the metrics (first time their eventId was seen).
EVENTS_COUNTED = Counter("eduknit_events_counted_total", "Learning events applied")
# Events dropped because their eventId was already counted.
EVENTS_DUPLICATE = Counter("eduknit_events_duplicate_total", "Duplicate learning events dropped")
# Messages sent to the dead-letter topic, by the field that was wrong ("" = whole message).
EVENTS_INVALID = Counter(
    "eduknit_events_invalid_total", "Messages rejected to the dead-letter topic", ["topic", "field"]
)
# Catalog entries written (updates and tombstones).
CATALOG_UPDATES = Counter("eduknit_catalog_updates_total", "Course catalog messages applied")
# Wall time of one batch: processing plus the ClickHouse write.
BATCH_SECONDS = Histogram(
    "eduknit_batch_seconds", "Seconds per processed batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
# Rows written to ClickHouse, by table.
ROWS_WRITTEN = Counter("eduknit_rows_written_total", "Rows written to ClickHouse", ["table"])
# Failed ClickHouse writes (each is retried with backoff; offsets are not committed).
SINK_FAILURES = Counter("eduknit_sink_failures_total", "Failed ClickHouse batch writes")
# 1 while the sink cannot write to ClickHouse.
SINK_FAILING = Gauge("eduknit_sink_failing", "1 while ClickHouse writes are failing")
# Times the invalid-ratio guard stopped the worker (streams/guard.py).
GUARD_STOPS = Counter("eduknit_guard_stops_total", "Worker stops by the invalid-ratio guard")
# Students whose state is in the worker's memory.
STATES_CACHED = Gauge("eduknit_states_cached", "Student states held in memory")
STATES_FROZEN = Gauge(
    "eduknit_states_frozen", "Idle student states held as snapshot JSON (part of states_cached)"
)
# Writes ClickHouse took (a batch's rows, a snapshot chunk, catalog rows): with
# eduknit_sink_failures_total, the worker's write success and failure counts.
SINK_WRITES = Counter("eduknit_sink_writes_total", "ClickHouse writes of the worker that succeeded")
# Students rebuilt from learning_events by resync control messages (streams/resync.py).
RESYNC_STUDENTS = Counter("eduknit_resync_students_total", "Students rebuilt by resync")
# The worker's scheduled consistency check of a random sample (streams/sample_check.py):
# students compared with their recomputation, and those whose stored dashboard differed
# (confirmed by a second comparison).
CONSISTENCY_CHECKED = Counter(
    "eduknit_consistency_checked_total", "Students checked against their recomputation"
)
CONSISTENCY_MISMATCHED = Counter(
    "eduknit_consistency_mismatched_total", "Checked students whose dashboard differed"
)
CONSISTENCY_LAST_MISMATCHED = Gauge(
    "eduknit_consistency_last_mismatched", "Mismatched students in the last sample checked"
)
CONSISTENCY_LAST_RUN = Gauge(
    "eduknit_consistency_last_run_timestamp_seconds", "When the last sample check finished"
)
# Consumer lag per partition of the worker's topics: the partition's end offset as the
# consumer last fetched it minus the group's committed offset, clamped at 0 (the
# embedded broker can report end offsets low, which would read as negative lag).
CONSUMER_LAG = Gauge(
    "eduknit_consumer_lag", "Messages not yet committed, per partition", ["topic", "partition"]
)
