"""Shared fixtures.

The embedded ClickHouse engine (chdb) opens one data directory per process, so
the whole pytest process shares one engine: tests isolate themselves by using
unique student and course ids (``unique_id``) or a database of their own
(``empty_db``), never by opening another path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from infra.clickhouse import shared_client


@pytest.fixture(scope="session")
def ch_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the process-wide embedded ClickHouse."""
    path: Path = tmp_path_factory.mktemp("clickhouse")
    return f"chdb://{path}"


@pytest.fixture(scope="session")
def ch_client(ch_url: str) -> Iterator[Client]:
    """The process-wide embedded ClickHouse, migrated."""
    yield shared_client(ch_url)


@pytest.fixture
def unique_id() -> str:
    """A prefix that keeps one test's ids apart from every other test's."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def empty_db(ch_client: Client, ch_url: str, unique_id: str) -> Iterator[Client]:
    """A client of a new, empty database in the shared engine (dropped afterwards)."""
    name = f"own_{unique_id}"
    ch_client.command(f"CREATE DATABASE {name}")
    client = clickhouse_connect.get_client(dsn=ch_url, database=name)
    try:
        yield client
    finally:
        ch_client.command(f"DROP DATABASE {name} SYNC")
