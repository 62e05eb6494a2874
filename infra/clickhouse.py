"""ClickHouse connections and the numbered, idempotent schema migrations.

``connect()`` opens the embedded engine (``chdb:///dir``) or a server over HTTP(S)
from ``CLICKHOUSE_URL``, waiting with retries until it answers. ``migrate()`` applies
``infra/migrations/NNNN_*.sql`` in order, each statement ``IF NOT EXISTS``, and
records every applied file in ``schema_migrations``; running it twice is harmless,
and so is running it in several processes at once (``infra.migration_lock``).

The embedded engine allows one process per data directory, so each process keeps
one client (``shared_client``) and every thread uses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from infra.migration_lock import MigrationLock

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_shared_lock = threading.Lock()
_shared: dict[str, Client] = {}


def _open(url: str) -> Client:
    if url.startswith("chdb:"):
        path = url[len("chdb://") :] if url.startswith("chdb://") else url[len("chdb:") :]
        if path and path != "memory":
            Path(path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=url)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https", "clickhouse"):
        raise ValueError(f"CLICKHOUSE_URL must be chdb:///dir, http(s)://host:port, got {url!r}")
    return clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)


def connect(url: str, attempts: int = 30, delay: float = 1.0) -> Client:
    """Open a client and wait until ``SELECT 1`` answers (pre-start step)."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            client = _open(url)
            client.command("SELECT 1")
            return client
        except Exception as exc:  # connection refused, server starting, lock held
            last = exc
            log.warning("ClickHouse not ready (attempt %d/%d): %s", attempt, attempts, exc)
            time.sleep(delay)
    raise RuntimeError(f"ClickHouse at {url} did not answer: {last}") from last


def shared_client(url: str) -> Client:
    """The one client of this process for ``url`` (opened and migrated once)."""
    with _shared_lock:
        client = _shared.get(url)
        if client is None:
            client = connect(url)
            migrate(client)
            _shared[url] = client
        return client


def shared(url: str) -> Client | None:
    """The shared client of ``url`` if this process opened it, else None."""
    with _shared_lock:
        return _shared.get(url)


def open_client(url: str) -> Client:
    """One more client of ``url`` (not shared, not migrated; the caller closes it)."""
    return _open(url)


def close_shared() -> None:
    """Close every shared client (at process exit)."""
    with _shared_lock:
        for client in _shared.values():
            try:
                client.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing ClickHouse client failed", exc_info=True)
        _shared.clear()


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def _pending(client: Client) -> list[Path]:
    """The migration files not recorded in ``schema_migrations``, in order."""
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations").result_rows}
    return [
        path
        for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
        if int(path.name[:4]) not in done
    ]


def migrate(client: Client, lock: Callable[[Client], MigrationLock] = MigrationLock) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied now.

    Safe when several processes start together: the pending ones are applied under
    ``infra.migration_lock`` and read again once it is held, so each is applied once.
    Nothing pending: no lock is taken.
    """
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    if not _pending(client):
        return []
    with lock(client):
        return _apply(client, _pending(client))


def _apply(client: Client, pending: list[Path]) -> list[str]:
    applied: list[str] = []
    for path in pending:
        version = int(path.name[:4])
        for statement in _statements(path.read_text()):
            client.command(statement)
        client.command(
            "INSERT INTO schema_migrations (version, name, applied_at) "
            "VALUES ({v:UInt32}, {n:String}, now64(3))",
            parameters={"v": version, "n": path.stem},
        )
        applied.append(path.stem)
        log.info("applied migration %s", path.stem)
    return applied
