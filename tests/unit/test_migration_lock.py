"""Migrations under concurrent start (``infra.migration_lock``) on the embedded engine.

The embedded engine opens one data directory per process, so "two workers and an
API starting at once" are three threads, each with a client of its own, migrating
a fresh database together. A migration that is not idempotent (it appends a row)
shows how often it ran: exactly once. The lock itself: one holder at a time,
a dead holder's lock is broken, a live one is waited for until the timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from infra import clickhouse
from infra.migration_lock import LOCK_TABLE, MigrationLock, MigrationLockTimeout

COUNTED = """
CREATE TABLE IF NOT EXISTS applied_log (name String) ENGINE = MergeTree ORDER BY name;
INSERT INTO applied_log SELECT '{name}' FROM system.numbers LIMIT 1;
SELECT sleep(0.2)
"""


def _client(ch_url: str, database: str) -> Client:
    return clickhouse_connect.get_client(dsn=ch_url, database=database)


def test_three_processes_starting_together_apply_each_migration_once(
    empty_db: Client, ch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in (1, 2, 3):
        name = f"000{number}_step"
        (tmp_path / f"{name}.sql").write_text(COUNTED.format(name=name))
    monkeypatch.setattr(clickhouse, "MIGRATIONS_DIR", tmp_path)
    database = empty_db.query("SELECT currentDatabase()").result_rows[0][0]
    start = threading.Barrier(3)
    applied: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def start_process(name: str) -> None:
        client = _client(ch_url, database)
        try:
            start.wait()
            applied[name] = clickhouse.migrate(client)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [
        threading.Thread(target=start_process, args=(n,)) for n in ("worker-1", "worker-2", "api")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    everything = sorted(name for names in applied.values() for name in names)
    assert everything == ["0001_step", "0002_step", "0003_step"]
    rows = empty_db.query("SELECT name, count() FROM applied_log GROUP BY name ORDER BY name")
    assert rows.result_rows == [("0001_step", 1), ("0002_step", 1), ("0003_step", 1)]
    recorded = empty_db.query("SELECT count() FROM schema_migrations").result_rows[0][0]
    assert recorded == 3
    assert not empty_db.query(f"EXISTS TABLE {LOCK_TABLE}").result_rows[0][0]


def test_one_holder_at_a_time(empty_db: Client) -> None:
    first = MigrationLock(empty_db, owner="host-a:1:x", wait=0.5, poll=0.05)
    second = MigrationLock(empty_db, owner="host-b:2:y", wait=0.5, poll=0.05)
    with first:
        assert second.try_acquire() is False
        with pytest.raises(MigrationLockTimeout, match="host-a:1:x"):
            second.acquire()
    with second:  # released: the next one gets it
        pass


def test_a_dead_holder_on_this_host_is_broken_at_once(empty_db: Client) -> None:
    gone = 2**22 + 12345  # above the usual pid_max: no such process
    empty_db.command(
        f"CREATE TABLE {LOCK_TABLE} (owner String, at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY at"
    )
    empty_db.command(
        f"INSERT INTO {LOCK_TABLE} VALUES ('{socket.gethostname()}:{gone}:old', now64(3))"
    )
    started = time.monotonic()
    with MigrationLock(empty_db, wait=5, poll=0.05) as lock:
        assert lock.holder(LOCK_TABLE)[0] == lock.owner  # type: ignore[index]
    assert time.monotonic() - started < 3


def test_a_holder_elsewhere_is_broken_once_its_heartbeat_is_stale(empty_db: Client) -> None:
    empty_db.command(
        f"CREATE TABLE {LOCK_TABLE} (owner String, at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY at"
    )
    empty_db.command(
        f"INSERT INTO {LOCK_TABLE} VALUES ('other-host:7:t', now64(3) - INTERVAL 10 SECOND)"
    )
    fresh = MigrationLock(empty_db, stale_after=60, wait=0.3, poll=0.05)
    with pytest.raises(MigrationLockTimeout):
        fresh.acquire()
    with MigrationLock(empty_db, stale_after=5, wait=5, poll=0.05):
        pass
    assert not empty_db.query(f"EXISTS TABLE {LOCK_TABLE}").result_rows[0][0]


def test_the_holder_keeps_its_heartbeat(empty_db: Client) -> None:
    with MigrationLock(empty_db, heartbeat=0.1) as lock:
        time.sleep(0.5)
        owner, rows, age = lock.holder(LOCK_TABLE)  # type: ignore[misc]
    assert owner == lock.owner and rows >= 3 and age < 0.5
