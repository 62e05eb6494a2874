"""Migrations against the embedded engine: a fresh database and an upgraded one.

``0005_fine_granules`` copies two tables to change their granule size; a
database that already holds rows must come out of it with the same rows. Each
test migrates a database of its own in the process-wide engine (chdb opens one
data directory per process).
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


def test_fresh_database_gets_every_migration(empty_db: Client) -> None:
    applied = clickhouse.migrate(empty_db)
    names = sorted(p.stem for p in clickhouse.MIGRATIONS_DIR.glob("[0-9]*.sql"))
    assert applied == names
    assert clickhouse.migrate(empty_db) == []  # recorded: nothing runs twice
    for table in FINE_TABLES:
        assert _granularity(empty_db, table) == "256"


def test_fine_granules_keep_the_rows_of_an_older_database(
    empty_db: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = tmp_path / "migrations-0004"
    older.mkdir()
    for path in clickhouse.MIGRATIONS_DIR.glob("000[1-4]_*.sql"):
        shutil.copy(path, older)
    monkeypatch.setattr(clickhouse, "MIGRATIONS_DIR", older)
    clickhouse.migrate(empty_db)
    empty_db.command(
        "INSERT INTO student_state VALUES ('s1', 3, '{\"n\": 1}', 7), ('s2', 1, '{}', 8)"
    )
    empty_db.command(
        "INSERT INTO student_summary (student_id, total_points, active_days, version) "
        "VALUES ('s1', 30, ['2026-11-25'], 7)"
    )
    select = "SELECT * FROM {} ORDER BY student_id"
    before = {t: empty_db.query(select.format(t)).result_rows for t in FINE_TABLES}
    assert _granularity(empty_db, "student_state") == "8192"

    monkeypatch.undo()
    later = sorted(p.stem for p in clickhouse.MIGRATIONS_DIR.glob("[0-9]*.sql"))[4:]
    assert later[0] == "0005_fine_granules"
    assert clickhouse.migrate(empty_db) == later  # and the migrations after it
    for table in FINE_TABLES:
        assert empty_db.query(select.format(table)).result_rows == before[table]
        assert _granularity(empty_db, table) == "256"
    tables = {row[0] for row in empty_db.query("SHOW TABLES").result_rows}
    assert not {t for t in tables if t.endswith(("_fine", "_coarse"))}
