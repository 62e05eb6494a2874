"""The worker's scheduled consistency check of a random sample of students.

Every ``EDUKNIT_CONSISTENCY_SECONDS`` the worker picks ``EDUKNIT_CONSISTENCY_SAMPLE``
students at random among those with counted events, recomputes each from
``learning_events`` and compares the result with its stored dashboard payload
(``streams.consistency``). A student that differs is compared again after
``CONFIRM_SECONDS`` (a write in flight can make it differ for a moment); only a
difference seen twice counts. Results go to the metrics
``eduknit_consistency_checked_total``, ``eduknit_consistency_mismatched_total``,
``eduknit_consistency_last_mismatched`` and a WARN line naming the students
(repair: ``eduknit resync --student ID``).

It reads through a client of its own (opened when first needed), on a thread,
so neither the event loop nor the processor's look-ups wait for it. Read only:
it never writes. A failed check is logged and tried again at the next interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from infra import ops_queries
from streams import consistency, metrics

log = logging.getLogger("eduknit.worker")

CONFIRM_SECONDS = 2.0


class SampleCheck:
    """Compares a random sample of students with their recomputation (blocking calls)."""

    def __init__(
        self,
        open_client: Callable[[], Any],
        sample_size: int,
        clock: Callable[[], dt.datetime],
        confirm_seconds: float = CONFIRM_SECONDS,
    ) -> None:
        self.open_client = open_client
        self.sample_size = sample_size
        self.clock = clock
        self.confirm_seconds = confirm_seconds
        self._client: Any = None

    def _query(self, dataset: str, selection: dict[str, Any]) -> list[Any]:
        if self._client is None:
            self._client = self.open_client()
        sql, parameters = ops_queries.statement(dataset, selection)
        return list(self._client.query(sql, parameters=parameters).result_rows)

    def differing(self, students: list[str]) -> dict[str, list[str]]:
        """The students of ``students`` whose stored dashboard differs, with how."""
        if not students:
            return {}
        selection = ops_queries.by_ids(students)
        dashboards = self._query("dashboards", selection)  # first: see streams.consistency
        events = self._query("events", selection)
        found = consistency.compare(dashboards, events, self.clock(), students)
        return {sid: c.differences for sid, c in found.items() if c.differences}

    def run(self) -> tuple[int, dict[str, list[str]]]:
        """Check one sample: (students checked, confirmed differences per student)."""
        sample = [row[0] for row in self._query("sample", {"n": self.sample_size})]
        suspects = self.differing(sample)
        if suspects:
            time.sleep(self.confirm_seconds)
            again = self.differing(sorted(suspects))
            suspects = {sid: again[sid] for sid in again if sid in suspects}
        metrics.CONSISTENCY_CHECKED.inc(len(sample))
        metrics.CONSISTENCY_MISMATCHED.inc(len(suspects))
        metrics.CONSISTENCY_LAST_MISMATCHED.set(len(suspects))
        metrics.CONSISTENCY_LAST_RUN.set(time.time())
        if suspects:
            shown = "; ".join(f"{sid}: {', '.join(d[:3])}" for sid, d in list(suspects.items())[:5])
            log.warning(
                "consistency: %d of %d sampled students differ from their counted events "
                "(repair with `eduknit resync --student ID`): %s",
                len(suspects), len(sample), shown,
            )  # fmt: skip
        else:
            log.info("consistency: %d sampled students match their counted events", len(sample))
        return len(sample), suspects

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
