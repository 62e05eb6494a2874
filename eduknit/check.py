"""``eduknit check``: is every dashboard what its counted events say?

For each student checked (a random sample, or ``--all``), the counted events
are read from ``learning_events`` and replayed with the worker's own rules
(``streams.consistency``); the dashboard payload they give is compared with
the stored one. Where they differ, the answers the API would serve from each
(``eduknit.answers``: ``/realtime`` and ``/statistics`` of 7, 30, 90 and 365
days, with the same catalog and clock) are compared field by field, and the
students whose answers differ are printed with the first differing fields.
A difference is confirmed by reading the student again after
``CONFIRM_SECONDS`` (a batch being written can make it differ for a moment).

Exit code 0 when every answer matches, 1 when any differs (repair with
``eduknit resync``), 2 when the check could not run. Stored values that no
answer shows but that differ are reported too, without failing.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from api.records import CatalogEntry
from eduknit import answers
from eduknit.ops_reader import OpsError, Reader, open_reader
from eduknit.progress import Progress
from infra import ops_queries
from infra.settings import Settings
from streams import consistency

CONFIRM_SECONDS = 2.0
CHUNK_STUDENTS = 1000
SHOWN_FIELDS = 3
SHOWN_STUDENTS = 50


@dataclass(slots=True)
class Finding:
    """A student whose stored dashboard differs from its recomputation."""

    student_id: str
    payload_parts: list[str]
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)  # answer fields


@dataclass(slots=True)
class Report:
    checked: int = 0
    events: int = 0
    seconds: float = 0.0
    differ: list[Finding] = field(default_factory=list)  # answers differ
    hidden: list[Finding] = field(default_factory=list)  # only unshown stored values differ


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(ids: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _catalog(reader: Reader) -> dict[str, CatalogEntry]:
    return {
        row[0]: CatalogEntry(row[0], row[1], int(row[2]), deleted=bool(row[3]))
        for row in reader.rows("catalog")
    }


def _compare(
    reader: Reader, selection: dict[str, Any], students: list[str], now: dt.datetime
) -> tuple[dict[str, consistency.Comparison], int]:
    dashboards = reader.rows("dashboards", selection)  # first: see streams.consistency
    events = reader.rows("events", selection)
    return consistency.compare(dashboards, events, now, students), len(events)


def check(
    reader: Reader,
    students: list[str],
    *,
    by_range: bool,
    now: dt.datetime,
    chunk: int = CHUNK_STUDENTS,
    progress: Progress | None = None,
    confirm_seconds: float = CONFIRM_SECONDS,
) -> Report:
    """Check ``students`` (sorted as ClickHouse sorts them when ``by_range``)."""
    started = time.monotonic()
    report = Report()
    suspects: dict[str, consistency.Comparison] = {}
    for part in _chunks(students, chunk):
        selection = (
            ops_queries.by_range(part[0], part[-1]) if by_range else ops_queries.by_ids(part)
        )
        found, events = _compare(reader, selection, part, now)
        suspects.update({sid: c for sid, c in found.items() if c.differences})
        report.checked += len(found)
        report.events += events
        if progress is not None:
            progress.advance(len(part), events)
    if suspects:
        time.sleep(confirm_seconds)
        again: dict[str, consistency.Comparison] = {}
        for part in _chunks(sorted(suspects), chunk):
            again.update(_compare(reader, ops_queries.by_ids(part), part, now)[0])
        catalog = _catalog(reader)
        for sid in sorted(suspects):
            confirmed = again.get(sid)
            if confirmed is None or not confirmed.differences:
                continue
            finding = Finding(sid, confirmed.differences)
            if confirmed.stored is not None and confirmed.recomputed is not None:
                finding.fields = answers.differences(
                    answers.answers(sid, confirmed.stored, catalog, now),
                    answers.answers(sid, confirmed.recomputed, catalog, now),
                )
                (report.differ if finding.fields else report.hidden).append(finding)
            else:  # no dashboard at all, or one without counted events
                report.differ.append(finding)
    report.seconds = time.monotonic() - started
    return report


def _value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def print_report(report: Report, out: IO[str]) -> None:
    rate = report.checked / max(report.seconds, 1e-9)
    print(
        f"checked {report.checked:,} students ({report.events:,} counted events) in "
        f"{report.seconds:,.1f} s ({rate:,.0f} students/s): {len(report.differ)} differ",
        file=out,
    )
    if report.differ:
        width = max(len("student"), *(len(f.student_id) for f in report.differ[:SHOWN_STUDENTS]))
        print(
            f"\n{'student'.ljust(width)}  first differing fields (served -> recomputed)", file=out
        )
        for finding in report.differ[:SHOWN_STUDENTS]:
            if finding.fields:
                shown = "; ".join(
                    f"{name}: {_value(x)} -> {_value(y)}"
                    for name, x, y in finding.fields[:SHOWN_FIELDS]
                )
                more = len(finding.fields) - SHOWN_FIELDS
                shown += f" (+{more} more)" if more > 0 else ""
            else:
                shown = ", ".join(finding.payload_parts)
            print(f"{finding.student_id.ljust(width)}  {shown}", file=out)
        if len(report.differ) > SHOWN_STUDENTS:
            print(f"... and {len(report.differ) - SHOWN_STUDENTS} more", file=out)
        print("\nrepair: eduknit resync --student ID ... (or --all)", file=out)
    if report.hidden:
        names = ", ".join(f.student_id for f in report.hidden[:10])
        print(
            f"{len(report.hidden)} more differ only in stored values no answer shows "
            f"(e.g. {names}): resync repairs them too",
            file=out,
        )


def run_check(
    settings: Settings,
    sample: int,
    everyone: bool,
    *,
    via: str | None = None,
    chunk: int = CHUNK_STUDENTS,
    out: IO[str] = sys.stdout,
) -> int:
    """The command: 0 all match, 1 some differ, 2 could not check."""
    try:
        reader = open_reader(settings, via)
    except OpsError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 2
    try:
        if everyone:
            students = [row[0] for row in reader.rows("students")]
        else:
            students = sorted(row[0] for row in reader.rows("sample", {"n": sample}))
        print(f"checking {len(students):,} students, reading {reader.where}", file=out)
        progress = Progress("check", len(students), "students")
        try:
            report = check(
                reader, students, by_range=everyone, now=utc_now(), chunk=chunk, progress=progress
            )
        finally:
            progress.close()
    except OpsError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    print_report(report, out)
    return 1 if report.differ else 0
