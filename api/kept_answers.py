"""Dashboard answers kept with the payload they came from (no I/O but the catalog copy).

A dashboard is polled far more often than it changes. ``api.dashboard_cache``
keeps a student's payload while it is current; the routes also keep what they
answered from it (the JSON body of ``/realtime`` or ``/statistics``) under the
request's (route, ``tz``, ``days``), with what that answer depended on
(``Basis``): the payload's version, "today" in the answer's zone, and the
catalog entries of the student's courses. While the payload is current, the
date the same and the entries equal, the route would compute the same bytes
again, except ``generatedAt`` (``/realtime``), which is written in at the
current time. Bodies are kept LZ4-compressed (~1.2 KiB for a /realtime body of
3.4 KiB, ~3 KiB for a 365-day /statistics body of 33 KiB), at most
``ANSWERS_PER_STUDENT`` per kept payload; they go with the payload.

``keep`` is what the routes call; ``kept_body`` is what the ASGI fast path
(``api.fast_path``) serves from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import lz4.block

from api import store
from api.dashboard_cache import DashboardCache
from api.observability import DASHBOARD_CACHE
from api.query_params import REALTIME
from api.records import CatalogEntry
from api.timeutil import iso_utc, local_today

# ``generatedAt`` is the second field of a /realtime body, after ``studentId``: a JSON
# string cannot hold this text unescaped, so its first occurrence is the field.
STAMP_FIELD = b',"generatedAt":"'

# (route path, tz, days): days is 0 for /realtime
AnswerKey = tuple[str, str | None, int]


@dataclass(frozen=True, slots=True)
class Basis:
    """What an answer computed from a kept payload depended on."""

    version: int  # of the payload
    today: dt.date  # in ``zone``
    zone: dt.tzinfo  # the request's ``tz``, else the zone of the student's latest event
    course_ids: tuple[str, ...]  # every course of the payload
    catalog: dict[str, CatalogEntry]  # their entries as the answer used them


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """A kept body (LZ4) and where its ``generatedAt`` value is (None: no such field)."""

    basis: Basis
    body: bytes
    stamp: tuple[int, int] | None


def answer_key(path: str, tz: str | None, days: int = 0) -> AnswerKey:
    """The key an answer is kept under."""
    return (path, tz, days)


def keep(
    cache: DashboardCache | None,
    student_id: str,
    key: AnswerKey,
    body: bytes,
    basis: Basis,
) -> None:
    """Keep the body a route answered from the kept payload ``basis.version``."""
    if cache is None:
        return
    stamp = None
    if key[0] == REALTIME:
        start = body.find(STAMP_FIELD)
        if start < 0:
            return  # not the shape this module knows: never serve it
        start += len(STAMP_FIELD)
        stamp = (start, body.index(b'"', start))
    answer = KeptAnswer(basis, lz4.block.compress(body), stamp)
    cache.keep_answer(student_id, basis.version, key, answer)


def kept_body(
    cache: DashboardCache, client: Any, student_id: str, key: AnswerKey, now: dt.datetime
) -> bytes | None:
    """The body kept under ``key`` if it still holds at ``now``, else None (no I/O)."""
    kept: KeptAnswer | None = cache.answer(student_id, key)
    if kept is None:
        return None
    basis = kept.basis
    if local_today(now, basis.zone) != basis.today:
        return None
    if store.CATALOG.kept_entries(client, basis.course_ids) != basis.catalog:
        return None  # an entry changed, or the kept catalog copy is stale (None)
    body: bytes = lz4.block.decompress(kept.body)
    if kept.stamp is not None:
        start, end = kept.stamp
        body = body[:start] + iso_utc(now).encode() + body[end:]
    DASHBOARD_CACHE.labels("hit").inc()
    return body
