"""What a student's own POST progress/update may claim (docs/api.md § What a student
can and cannot claim). Service tokens are trusted producers: none of this applies
to them; it applies to every other caller (students, and admins writing for
themselves).

In the order the route applies them:

1. **Rate** (``Admission.rate``): at most ``EDUKNIT_STUDENT_POSTS_PER_MINUTE`` (60)
   requests per minute per caller, in this API process (``api.rate_limit``); the
   next is 429 ``{"detail": …}`` with ``Retry-After`` (whole seconds). Checked
   before the body, so invalid requests count too.
2. **Course** (``check_claim``): the course must be in the catalog (not deleted),
   else 422 on ``courseId``.
3. **Lesson**: when its catalog entry lists lessons, ``lessonId`` must be one of
   them, else 422 on ``lessonId`` (the worker would dead-letter it).
4. **Minutes of the day**: the student's minutes on the event's local date (every
   course, as ``student_course_daily`` holds them, plus the minutes of this
   student's earlier POSTs not yet seen applied) plus ``timeSpent`` must not pass
   1,440, else 422 on ``timeSpent``. A re-sent ``eventId`` that was counted
   already is not judged again (it changes nothing).

A student's POSTs are handled one at a time in this process (``serialized``), from
the checks to the end of the wait for the event, so two concurrent requests
cannot both pass the minutes check; an event answered 202 keeps its minutes
reserved (``reserve``) until it is seen applied or ``RESERVE_SECONDS`` passed.
Requests to other API processes are not seen: with N replicas a student could
claim up to N times as much in parallel (docs/api.md says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import Depends, HTTPException, Request

from api.deps import CurrentPrincipal
from api.errors import invalid_input
from api.rate_limit import SlidingWindow
from api.store import CATALOG, StoreUnavailable, event_applied
from schemas.events import LearningEvent, derive
from schemas.units import from_micro, to_micro

DAY_MINUTES = 1440
RESERVE_SECONDS = 120.0
_DAY_SQL = (  # one row per course: summed here in millionths, exactly
    "SELECT minutes FROM student_course_daily FINAL "
    "WHERE student_id = {student:String} AND local_date = {day:Date}"
)


@dataclass(slots=True)
class Reservation:
    """The minutes of a POST answered before its event was seen applied."""

    event_id: str
    day: dt.date
    minutes: float
    until: float  # monotonic time after which it is forgotten


@dataclass
class Admission:
    """The per-process state of the rules above: the rate window, the per-student
    locks, the minutes reserved by events not yet seen applied."""

    posts_per_minute: int
    clock: Callable[[], float] = time.monotonic
    window: SlidingWindow = field(init=False)
    _locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict, init=False)
    _reserved: dict[str, list[Reservation]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.window = SlidingWindow(self.posts_per_minute, 60.0, self.clock)

    def rate(self, caller: str) -> int | None:
        """None when ``caller`` may post now, else the seconds to wait."""
        return self.window.admit(caller)

    @contextlib.asynccontextmanager
    async def serialized(self, student: str) -> AsyncIterator[None]:
        """One request of ``student`` at a time in this process."""
        lock, users = self._locks.get(student) or (asyncio.Lock(), 0)
        self._locks[student] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[student]
            if users <= 1:
                del self._locks[student]
            else:
                self._locks[student] = (lock, users - 1)

    def reserve(self, student: str, event_id: str, day: dt.date, minutes: float) -> None:
        """Keep the minutes of an event answered 202 until it is seen applied."""
        if minutes > 0:
            until = self.clock() + RESERVE_SECONDS
            self._reserved.setdefault(student, []).append(
                Reservation(event_id, day, minutes, until)
            )

    def reserved(self, client: Client, student: str, day: dt.date) -> int:
        """Millionths of minutes reserved for ``day`` by events not yet seen applied
        (blocking: looks the events up; forgets expired and applied ones)."""
        kept = [r for r in self._reserved.pop(student, []) if r.until > self.clock()]
        kept = [r for r in kept if not event_applied(client, student, r.event_id)]
        if kept:
            self._reserved[student] = kept
        return sum(to_micro(r.minutes) for r in kept if r.day == day)

    def check_claim(self, client: Client, event: LearningEvent, *, resent: bool) -> dt.date:
        """Apply rules 2-4 to a student's event (blocking; raises the 422s above, or
        ``StoreUnavailable``); returns the event's local date.

        ``resent``: the body named its ``eventId``: when that event was counted
        already, the minutes are not judged again.
        """
        try:
            entry = CATALOG.entries(client, [event.course_id]).get(event.course_id)
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailable("ClickHouse is unavailable; try again shortly") from exc
        if entry is None or entry.deleted:
            raise invalid_input("courseId", f"course {event.course_id!r} is not in the catalog")
        if entry.lessons is not None and event.lesson_id not in entry.lessons:
            raise invalid_input(
                "lessonId",
                f"lesson {event.lesson_id!r} is not one of the lessons of course "
                f"{event.course_id!r} in the catalog",
            )
        day = derive(event).local_date
        if event.time_spent <= 0:
            return day
        student = event.student_id
        if resent and event_applied(client, student, event.event_id):
            return day
        spent = _day_minutes(client, student, day) + self.reserved(client, student, day)
        claimed = spent + to_micro(event.time_spent)
        if claimed > to_micro(DAY_MINUTES):
            raise invalid_input(
                "timeSpent",
                f"would make {from_micro(claimed):g} minutes on {day.isoformat()} "
                f"(the student has {from_micro(spent):g}; at most {DAY_MINUTES} per local day)",
            )
        return day


def _day_minutes(client: Client, student: str, day: dt.date) -> int:
    """Millionths of the minutes ``student`` has on the local date ``day`` (every course)."""
    try:
        rows = client.query(_DAY_SQL, parameters={"student": student, "day": day}).result_rows
    except (ClickHouseError, OSError) as exc:
        raise StoreUnavailable("ClickHouse is unavailable; try again shortly") from exc
    return sum(to_micro(minutes) for (minutes,) in rows)


# ----------------------------------------------------------- FastAPI dependencies
async def get_admission(request: Request) -> Admission:
    """The app's admission state (``api.edge.install``)."""
    return request.app.state.admission  # type: ignore[no-any-return]


AdmissionDep = Annotated[Admission, Depends(get_admission)]


async def limit_rate(principal: CurrentPrincipal, admission: AdmissionDep) -> None:
    """Rule 1: 429 with ``Retry-After`` past the caller's posts per minute (not services)."""
    if principal.role == "service":
        return
    wait = admission.rate(principal.subject)
    if wait is not None:
        raise HTTPException(
            status_code=429,
            detail=f"at most {admission.posts_per_minute} progress updates per minute; "
            f"try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


RateLimited = Annotated[None, Depends(limit_rate)]
