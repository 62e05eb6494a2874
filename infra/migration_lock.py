"""A lock in ClickHouse that lets one process at a time apply the schema migrations.

Several workers and API replicas may start together against a fresh ClickHouse;
``infra.clickhouse.migrate`` takes this lock before it applies anything, and reads
what is applied again under it, so each migration is applied exactly once.

The lock is a table: ``CREATE TABLE schema_migration_lock`` (without ``IF NOT
EXISTS``) succeeds for exactly one caller, and the others get
``TABLE_ALREADY_EXISTS`` (ClickHouse serialises the DDL of one table name). The
holder writes its name (``host:pid:token``) into it at once and again every
``heartbeat`` seconds from a thread, for as long as it migrates, and drops the
table when done. The others wait, polling every ``poll`` seconds, at most
``wait`` seconds (then ``MigrationLockTimeout`` names the holder).

A holder that died leaves the table behind. It is taken as dead, and the lock
broken, when its last heartbeat is older than ``stale_after`` seconds by the
server's clock (or it wrote none for that long, as seen from here), or at once
when it ran on this host and its process is gone (or is this process under a
new token: a restarted container). Breaking renames the table aside, checks that
the renamed one is the dead holder's (its first row), drops it, and competes for
the lock again; if another waiter was quicker and a live lock got renamed, it is
renamed back. A migration interrupted by the death of its holder may be half
applied: the next holder applies it again, which the migrations tolerate
(``IF NOT EXISTS``; see ``infra/migrations``), or an operator finishes it.

Single ClickHouse server or embedded engine; a replicated cluster would need
``ON CLUSTER`` DDL and its own lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LOCK_TABLE = "schema_migration_lock"
_CREATE = (
    f"CREATE TABLE {LOCK_TABLE} (owner String, at DateTime64(3, 'UTC')) "
    "ENGINE = MergeTree ORDER BY at"
)
_BEAT = f"INSERT INTO {LOCK_TABLE} (owner, at) VALUES ({{owner:String}}, now64(3))"
# The holder (first row), and how long ago the last heartbeat was, by the server's clock.
_HOLDER = (
    "SELECT argMin(owner, at), count(), "
    "toFloat64(dateDiff('millisecond', max(at), now64(3))) / 1000 FROM {table:Identifier}"
)


# The owners holding or acquiring the lock in this process (threads): alive by definition.
_LIVE: set[str] = set()


class MigrationLockTimeout(RuntimeError):
    """The lock was held by another process for longer than the wait allowed."""


def this_process() -> str:
    """``host:pid:token``: who holds the lock (the token tells restarts apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _already_exists(exc: Exception) -> bool:
    text = str(exc)
    return "TABLE_ALREADY_EXISTS" in text or "Code: 57." in text


def _missing(exc: Exception) -> bool:
    text = str(exc)
    return "UNKNOWN_TABLE" in text or "Code: 60." in text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MigrationLock:
    """Context manager: hold the migration lock (see the module)."""

    def __init__(
        self,
        client: Any,
        *,
        owner: str | None = None,
        stale_after: float = 120.0,
        heartbeat: float = 5.0,
        wait: float = 900.0,
        poll: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.owner = owner or this_process()
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.wait = wait
        self.poll = poll
        self.clock = clock
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None
        self._empty_since: dict[str, float] = {}  # holder seen without a row, since

    # ------------------------------------------------------------- acquiring
    def __enter__(self) -> MigrationLock:
        _LIVE.add(self.owner)
        try:
            self.acquire()
        except BaseException:
            _LIVE.discard(self.owner)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        finally:
            _LIVE.discard(self.owner)

    def try_acquire(self) -> bool:
        """Create the lock table; True when this process holds the lock now."""
        try:
            self.client.command(_CREATE)
        except Exception as exc:
            if _already_exists(exc):
                return False
            raise
        self.client.command(_BEAT, parameters={"owner": self.owner})
        self._stop.clear()
        self._beats = threading.Thread(target=self._beat, name="migration-lock", daemon=True)
        self._beats.start()
        log.info("migration lock taken by %s", self.owner)
        return True

    def acquire(self) -> None:
        """Wait for the lock (at most ``wait`` seconds), breaking a dead holder's."""
        deadline = self.clock() + self.wait
        while not self.try_acquire():
            holder = self.holder(LOCK_TABLE)
            if holder is not None and self.dead(*holder):
                self.break_lock(holder[0])
                continue
            if self.clock() > deadline:
                who = holder[0] if holder else "another process"
                raise MigrationLockTimeout(
                    f"the migration lock ({LOCK_TABLE}) is held by {who} for more than "
                    f"{self.wait:.0f} s; if that process is gone, drop the table"
                )
            time.sleep(self.poll)

    def holder(self, table: str) -> tuple[str, int, float] | None:
        """(first owner, rows, seconds since the last heartbeat) of a lock table, or
        None when it is gone."""
        try:
            rows = self.client.query(_HOLDER, parameters={"table": table}).result_rows
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        owner, count, age = rows[0]
        return str(owner), int(count), float(age)

    def dead(self, owner: str, rows: int, age: float) -> bool:
        """Whether the holder is gone (see the module)."""
        if rows == 0:  # created, no heartbeat yet: dead only if it stays so
            since = self._empty_since.setdefault(owner, self.clock())
            return self.clock() - since > self.stale_after
        host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host == socket.gethostname() and pid_text.isdigit() and owner not in _LIVE:
            pid = int(pid_text)  # here: this process under an old token (a restart), or gone
            if pid == os.getpid() or not _pid_alive(pid):
                return True
        return age > self.stale_after

    def break_lock(self, dead_owner: str) -> None:
        """Rename the dead holder's table aside and drop it (see the module)."""
        aside = f"{LOCK_TABLE}_broken_{uuid.uuid4().hex[:12]}"
        try:
            self.client.command(f"RENAME TABLE {LOCK_TABLE} TO {aside}")
        except Exception as exc:
            if _missing(exc):
                return  # another waiter broke it first
            raise
        renamed = self.holder(aside)
        if renamed is not None and renamed[0] != dead_owner and renamed[1] > 0:
            try:  # a live lock, created after the dead one was broken: put it back
                self.client.command(f"RENAME TABLE {aside} TO {LOCK_TABLE}")
                return
            except Exception:
                log.exception("could not put back the migration lock of %s", renamed[0])
        log.warning("broke the migration lock of %s (gone)", dead_owner)
        self.client.command(f"DROP TABLE IF EXISTS {aside} SYNC")

    # ------------------------------------------------------------- releasing
    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.client.command(_BEAT, parameters={"owner": self.owner})
            except Exception:  # the next beat may pass; a long outage makes others wait
                log.warning("migration lock heartbeat failed", exc_info=True)

    def release(self) -> None:
        """Stop the heartbeat and drop the lock table, if it is still ours."""
        self._stop.set()
        if self._beats is not None:
            self._beats.join(timeout=10)
            self._beats = None
        holder = self.holder(LOCK_TABLE)
        if holder is not None and holder[0] == self.owner:
            self.client.command(f"DROP TABLE IF EXISTS {LOCK_TABLE} SYNC")
            log.info("migration lock released by %s", self.owner)
