"""Migrations against the embedded engine: a fresh database and an upgraded one.

``0005_fine_granules`` copies two tables to change their granule size; a
database that already holds rows must come out of it with the same rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from infra import clickhouse

FINE_TABLES = ("student_summary", "student_state")


def _granularity(client: Client, table: str) -> str:
    ddl = client.query(f"SHOW CREATE TABLE {table}").result_rows[0][0]
    return ddl.rsplit("index_granularity = ", 1)[1].split(",")[0].strip()


def test_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    client = clickhouse.connect(f"chdb://{tmp_path / 'data'}")
    applied = clickhouse.migrate(client)
    names = sorted(p.stem for p in clickhouse.MIGRATIONS_DIR.glob("[0-9]*.sql"))
    assert applied == names
    assert clickhouse.migrate(client) == []  # recorded: nothing runs twice
    for table in FINE_TABLES:
        assert _granularity(client, table) == "256"


def test_fine_granules_keep_the_rows_of_an_older_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = tmp_path / "migrations-0004"
    older.mkdir()
    for path in clickhouse.MIGRATIONS_DIR.glob("000[1-4]_*.sql"):
        shutil.copy(path, older)
    monkeypatch.setattr(clickhouse, "MIGRATIONS_DIR", older)
    client = clickhouse.connect(f"chdb://{tmp_path / 'data'}")
    clickhouse.migrate(client)
    client.command(
        "INSERT INTO student_state VALUES ('s1', 3, '{\"n\": 1}', 7), ('s2', 1, '{}', 8)"
    )
    client.command(
        "INSERT INTO student_summary (student_id, total_points, active_days, version) "
        "VALUES ('s1', 30, ['2026-11-25'], 7)"
    )
    before = {
        t: client.query(f"SELECT * FROM {t} ORDER BY student_id").result_rows for t in FINE_TABLES
    }
    assert _granularity(client, "student_state") == "8192"

    monkeypatch.undo()
    assert clickhouse.migrate(client) == ["0005_fine_granules"]
    for table in FINE_TABLES:
        assert (
            client.query(f"SELECT * FROM {table} ORDER BY student_id").result_rows == before[table]
        )
        assert _granularity(client, table) == "256"
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert not {t for t in tables if t.endswith(("_fine", "_coarse"))}
