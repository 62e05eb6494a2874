"""The live streams' hub: each change of a watched student read and encoded once, for all.

``StreamHub`` subscribes to the change feed (``api.change_feed``) beside the
dashboard cache. The feed tells it, on the feed's thread, which students'
``student_dashboard`` rows changed (with their versions); the hub hands the ones
with an open stream over to the event loop (``call_soon_threadsafe``) and never
blocks the feed. On the loop, the changed students are read on the thread pool
(``api.views.realtime_answers``: their payloads in one query, as many as were
due when it started (one poll's worth, usually), then the /realtime body once per
student and time zone its streams asked for) and encoded once per zone; every
open stream of that student gets the same bytes. No stream polls.

Ids: an event's id is the version of the payload it was computed from (the
worker's, increasing with each change of the student's dashboard; 0 for a student
with no payload yet), the same on every API replica. A stream gets an event only
with an id above the last one it was handed (after a table restart: any other
id), so ids increase per stream.

Each stream (``StreamClient``) holds at most one frame not yet written: a newer
state replaces it (a slow client gets the latest state, never a queue), so memory
per stream is bounded whatever the client's speed. A stream that ends (client
gone, server stopping, feed stale) leaves at once, and a student with no stream
left is forgotten.

Failures: a read that fails is tried again by the watchdog (every second) while
the student's streams are behind what the feed saw. When the feed has not polled
for ``stale_after`` seconds (ClickHouse down), the hub ends every stream: clients
reconnect and get 503 until ClickHouse answers again, instead of a stream that
looks live and is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi.concurrency import run_in_threadpool

from api import kept_answers
from api.dashboard_cache import DashboardCache
from api.models import RealtimeDashboard
from api.observability import OPEN_STREAMS, STREAM_EVENTS, STREAM_PUSH, STREAM_READS
from api.query_params import REALTIME
from api.sse import KEEP_ALIVE, event_frame
from api.views import kept_realtime_view, realtime_answers

log = logging.getLogger(__name__)

EVENT = "dashboard"
WATCHDOG_SECONDS = 1.0
STALE_AFTER_SECONDS = 5.0  # no successful feed poll for this long: streams end
FIRST_READS = 2  # concurrent first reads of new streams (see ``StreamHub.__init__``)
LAGGING_READS = 3  # reads tried again at once when one returned an older version than seen


class StreamClient:
    """One open stream: its student and zone, the last id handed to it, one pending frame."""

    __slots__ = ("_frame", "_hub", "_wake", "closed", "sent_id", "student", "tz")

    def __init__(self, hub: StreamHub, student: str, tz: str | None) -> None:
        self._hub = hub
        self.student = student
        self.tz = tz
        self.sent_id: int | None = None  # None until its first state is decided
        self.closed = False
        self._frame: bytes | None = None
        self._wake = asyncio.Event()

    def offer(self, frame: bytes, event_id: int) -> None:
        """Hand over the state ``event_id``; an unwritten older one is dropped."""
        self._frame = frame
        self.sent_id = event_id
        self._wake.set()
        STREAM_EVENTS.inc()

    async def next(self, keepalive: float) -> bytes | None:
        """The next frame, ``KEEP_ALIVE`` after ``keepalive`` quiet seconds, None once closed."""
        while not self.closed:
            frame, self._frame = self._frame, None
            if frame is not None:
                return frame
            self._wake.clear()
            try:
                async with asyncio.timeout(keepalive):
                    await self._wake.wait()
            except TimeoutError:
                return KEEP_ALIVE
        return None

    def close(self) -> None:
        """End the stream and leave the hub (idempotent)."""
        if not self.closed:
            self.closed = True
            self._frame = None
            self._wake.set()
            self._hub.leave(self)


class _Topic:
    """The open streams of one student and what the hub knows of the student."""

    __slots__ = ("clients", "force", "seen", "seen_at", "student", "version")

    def __init__(self, student: str) -> None:
        self.student = student
        self.clients: set[StreamClient] = set()
        self.version = 0  # the newest version read for these streams
        self.seen = 0  # the newest version the feed announced while they were open
        self.seen_at: float | None = None  # start of the poll that announced it, until pushed
        self.force = False  # after a table restart: hand over any id that differs

    def behind(self) -> bool:
        """True while a stream has not been handed the newest version known."""
        target = max(self.seen, self.version)
        return self.force or any(
            client.sent_id is not None and client.sent_id < target for client in self.clients
        )


class StreamHub:
    """Open streams by student; a subscriber of the change feed (see the module)."""

    def __init__(
        self,
        client: Any,
        cache: DashboardCache | None,
        clock: Callable[[], dt.datetime],
        *,
        stale_after: float = STALE_AFTER_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.cache = cache
        self.clock = clock
        self.stale_after = stale_after
        self.monotonic = monotonic
        self._topics: dict[str, _Topic] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._polled_at: float | None = None  # start of the feed's last successful poll
        self._started_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._due: set[_Topic] = set()  # students to read with the next read
        # New streams' first reads at a time: the reads share a few ClickHouse connections
        # with the change feed (``api.pool``), and a burst of reconnects (an API restart)
        # holding them all would keep the feed from polling until the streams went stale.
        self._first_reads = asyncio.Semaphore(FIRST_READS)
        self._reading = False  # a read of the due students is running

    # ------------------------------------------------------------ the app's life
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Follow the feed from now on, handing changes to ``loop`` (the app's)."""
        self._loop = loop
        self._started_at = self.monotonic()
        self._spawn(self._watchdog())

    def stop(self) -> None:
        """End every stream and stop following the feed (on the loop, at shutdown; again
        is harmless): new streams are refused (503)."""
        self._loop = None
        self.close_all()
        for task in list(self._tasks):
            task.cancel()

    def close_all(self) -> None:
        """End every open stream (on the loop): uvicorn waits for open responses to end
        before it shuts down (``api.serving``), and clients reconnect elsewhere."""
        for topic in list(self._topics.values()):
            for client in list(topic.clients):
                client.close()

    def __len__(self) -> int:
        """Open streams."""
        return sum(len(topic.clients) for topic in self._topics.values())

    def fresh(self) -> bool:
        """True while the hub runs and the feed polled successfully within ``stale_after``
        seconds (or started that recently)."""
        if self._loop is None:
            return False
        since = self._started_at if self._polled_at is None else self._polled_at
        return self.monotonic() - since <= self.stale_after

    # ------------------------------------------------- the feed's thread (subscriber)
    def changed(self, versions: Sequence[tuple[str, int]], polled_at: float) -> None:
        """A poll saw these (student, version) pairs: hand the watched ones to the loop."""
        self._polled_at = polled_at
        loop = self._loop
        if loop is None or not versions:
            return
        topics = self._topics  # membership tests only: safe from another thread
        watched = [(student, version) for student, version in versions if student in topics]
        if watched:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._announce, watched, polled_at)

    def restarted(self) -> None:
        """The table was recreated: every version seen is void; read every watched student."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._restart)

    # ------------------------------------------------------------- the loop's side
    def join(self, student: str, tz: str | None) -> StreamClient:
        """A new stream of ``student`` in zone ``tz``; it hears of changes from now on."""
        topic = self._topics.get(student)
        if topic is None:
            topic = self._topics[student] = _Topic(student)
        client = StreamClient(self, student, tz)
        topic.clients.add(client)
        OPEN_STREAMS.inc()
        return client

    def leave(self, client: StreamClient) -> None:
        """``client`` ended (``StreamClient.close`` calls this)."""
        topic = self._topics.get(client.student)
        if topic is None or client not in topic.clients:
            return
        topic.clients.discard(client)
        OPEN_STREAMS.dec()
        if not topic.clients:
            del self._topics[client.student]

    async def first_frame(self, client: StreamClient, last_id: int | None) -> bytes | None:
        """The current state for a new stream (None when it is ``last_id``: nothing to send).

        Read like ``/realtime`` (a kept payload without I/O, else one read on the thread
        pool); ``StoreUnavailable`` when ClickHouse fails. The stream joined before the
        read, so a change committed meanwhile is announced to it and read again.
        """
        now = self.clock()
        kept = kept_realtime_view(self.cache, self.client, client.student, client.tz, now)
        if kept is None:
            async with self._first_reads:  # a burst of opens must not starve the feed
                read = await run_in_threadpool(
                    realtime_answers, self.client, {client.student: [client.tz]}, now, self.cache
                )
            version, answers = read[client.student]
            answer, basis = answers[0]
        else:
            answer, basis = kept
            version = basis.version if basis is not None else 0
        frame = self._encode(client.student, client.tz, version, answer, basis)
        client.sent_id = version
        if self._loop is None:  # stopped during the read: the stream ends after this state
            client.close()
        topic = self._topics.get(client.student)
        if topic is not None:
            topic.version = max(topic.version, version)
            if topic.behind():  # changed meanwhile, or the student's other streams are older
                self._refresh(topic)
        return None if last_id == version else frame

    def _announce(self, watched: Iterable[tuple[str, int]], polled_at: float) -> None:
        for student, version in watched:
            topic = self._topics.get(student)
            if topic is None or version <= topic.seen:
                continue
            topic.seen = version
            if topic.seen_at is None:
                topic.seen_at = polled_at
            if topic.behind():
                self._refresh(topic)

    def _restart(self) -> None:
        for topic in self._topics.values():
            topic.seen = topic.version = 0
            topic.force = True
            self._refresh(topic)

    def _refresh(self, topic: _Topic) -> None:
        """Read ``topic``'s student with the next read. One read runs at a time, of every
        student due when it starts: the students one poll found changed are read together."""
        self._due.add(topic)
        if not self._reading:
            self._reading = True
            self._spawn(self._read_due())

    async def _read_due(self) -> None:
        lagging = 0
        try:
            while self._due:
                due = [topic for topic in self._due if topic.clients and topic.behind()]
                self._due.clear()
                if due:
                    late = await self._read(due)
                    lagging = lagging + 1 if late else 0
                    if lagging > LAGGING_READS:  # the watchdog tries these again in a second
                        self._due.difference_update(late)
                    elif late:
                        await asyncio.sleep(0.05 * lagging)
        except Exception as exc:  # ClickHouse failed: the watchdog tries again
            log.warning("live stream read failed: %s", exc)
        finally:
            self._reading = False

    async def _read(self, due: list[_Topic]) -> list[_Topic]:
        """One read of the students of ``due``, handed to their streams; returns the
        topics whose read was older than what the feed saw (a replica behind it)."""
        forces = [topic.force for topic in due]
        zones = {topic.student: list({client.tz for client in topic.clients}) for topic in due}
        now = self.clock()
        read = await run_in_threadpool(realtime_answers, self.client, zones, now, self.cache)
        STREAM_READS.inc()
        late = []
        for topic, force in zip(due, forces, strict=True):
            version, answers = read[topic.student]
            frames = {
                tz: self._encode(topic.student, tz, version, answer, basis)
                for tz, (answer, basis) in zip(zones[topic.student], answers, strict=True)
            }
            if force:
                topic.force = False
            self._hand_over(topic, frames, version, force)
            if version < max(topic.seen, topic.version):
                late.append(topic)
            topic.version = max(topic.version, version)
            if topic.behind():  # late, or a stream joined meanwhile in another zone
                self._due.add(topic)
        return late

    def _hand_over(
        self, topic: _Topic, frames: dict[str | None, bytes], version: int, force: bool
    ) -> None:
        for client in list(topic.clients):
            sent = client.sent_id  # None: its first state is being read (``first_frame``)
            frame = frames.get(client.tz)  # None: joined during the read in another zone
            if (
                sent is not None
                and frame is not None
                and (version > sent or (force and version != sent))
            ):
                client.offer(frame, version)
        if topic.seen_at is not None and version >= topic.seen:
            STREAM_PUSH.observe(self.monotonic() - topic.seen_at)
            topic.seen_at = None

    def _encode(
        self,
        student: str,
        tz: str | None,
        version: int,
        answer: RealtimeDashboard,
        basis: kept_answers.Basis | None,
    ) -> bytes:
        """The event of ``answer``; the body is also kept for ``/realtime`` (``api.fast_path``)."""
        body = answer.model_dump_json(by_alias=True).encode()
        if basis is not None:
            key = kept_answers.answer_key(REALTIME, tz)
            kept_answers.keep(self.cache, student, key, body, basis)
        return event_frame(EVENT, version, body)

    async def _watchdog(self) -> None:
        """Every second: end the streams when the feed is stale; retry failed reads."""
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            if not self.fresh():
                if self._topics:
                    log.warning(
                        "change feed stale for %.0f s: ending live streams", self.stale_after
                    )
                self.close_all()
                continue
            for topic in list(self._topics.values()):
                if topic.behind():
                    self._refresh(topic)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
