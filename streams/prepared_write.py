"""One write's rows, encoded ahead, and the engine calls that insert them.

The worker encodes a batch on its event loop thread (``prepare``) and hands the
result to a writer thread whose only work is to call ClickHouse (``send``). The
split is about the GIL: while the loop processes the next batch, every time the
writer thread wants the GIL back it waits up to a switch interval (5 ms). Rows
encoded on the loop, and inserted by calls that need no Python while they run,
keep those waits to about two per batch.

For the embedded engine, each table's rows go into an anonymous in-memory file
(``memfd``) as an Arrow stream (``streams.row_encoding``), and one call runs an
``INSERT … FROM INFILE '/proc/self/fd/N' FORMAT ArrowStream`` per table, in
write order. The engine reads the files without Python.
``python -m bench.insert_micro`` (1,200-event batches, another thread keeping
the GIL busy as the loop does): 143.7 ms per batch with JSON lines through
clickhouse-connect's temporary file, 260.5 with Arrow streams encoded by the
writing thread, 31.2 prepared ahead. (Arrow tables read through the engine's
``Python()`` table function took ~40 ms per table instead of ~8 against a busy
GIL: each read takes the GIL several times from the engine's threads.) For a
server, and for the tables without an Arrow schema, the rows are
JSONCompactEachRow lines, one insert per table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from streams.row_encoding import ARROW_SCHEMAS, arrow_block, arrow_stream, json_block
from streams.rows import COLUMNS

INSERT_SETTINGS = {"date_time_input_format": "best_effort"}
INLINE_SETTINGS = ", ".join(f"{name} = '{value}'" for name, value in INSERT_SETTINGS.items())
# Anonymous files the engine can open by path: Linux only (elsewhere, JSON lines inline).
ARROW_FILES = hasattr(os, "memfd_create")


@dataclass(slots=True)
class PreparedWrite:
    """Encoded rows of one write: ``queries`` for the engine, ``blocks`` for a server.

    Holds file descriptors when it has Arrow files: ``close`` it once sent (or
    abandoned). Sending it again repeats the same inserts (they are idempotent).
    """

    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    queries: list[str] = field(default_factory=list)  # run one after the other
    blocks: list[tuple[str, bytes]] = field(default_factory=list)  # (table, JSON lines)
    files: list[int] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows in all."""
        return sum(self.tables.values())

    def send(self, writer: Client) -> None:
        """Insert everything, in the order it was prepared."""
        for query in self.queries:
            writer.raw_query(query)
        for table, block in self.blocks:
            writer.raw_insert(
                table,
                column_names=COLUMNS[table],
                insert_block=block,
                settings=INSERT_SETTINGS,
                fmt="JSONCompactEachRow",
            )

    def close(self) -> None:
        """Release the Arrow files."""
        for fd in self.files:
            os.close(fd)
        self.files.clear()


def close_all(writes: Iterable[PreparedWrite]) -> None:
    """Release the Arrow files of every write."""
    for write in writes:
        write.close()


def prepare(
    tables: dict[str, Sequence[Sequence[Any]]], order: Sequence[str], *, embedded: bool
) -> PreparedWrite:
    """Encode the tables' rows in ``order`` (tables without rows are skipped)."""
    prepared = PreparedWrite()
    arrow_inserts: list[str] = []  # consecutive Arrow inserts go in one call
    try:
        for table in order:
            table_rows = tables.get(table)
            if not table_rows:
                continue
            prepared.tables[table] = len(table_rows)
            columns = ", ".join(COLUMNS[table])
            if not embedded:
                prepared.blocks.append((table, json_block(table_rows)))
            elif ARROW_FILES and table in ARROW_SCHEMAS:
                path = _arrow_file(prepared, table, table_rows)
                arrow_inserts.append(
                    f"INSERT INTO {table} ({columns}) FROM INFILE '{path}' FORMAT ArrowStream"
                )
            else:
                if arrow_inserts:
                    prepared.queries.append("; ".join(arrow_inserts))
                    arrow_inserts = []
                prepared.queries.append(
                    f"INSERT INTO {table} ({columns}) SETTINGS {INLINE_SETTINGS} "
                    f"FORMAT JSONCompactEachRow\n{json_block(table_rows).decode()}"
                )
        if arrow_inserts:
            prepared.queries.append("; ".join(arrow_inserts))
    except BaseException:
        prepared.close()
        raise
    return prepared


def _arrow_file(prepared: PreparedWrite, table: str, table_rows: Sequence[Sequence[Any]]) -> str:
    """Write the rows as an Arrow stream into a new memfd of ``prepared``; its path."""
    fd = os.memfd_create(f"eduknit-{table}", os.MFD_CLOEXEC)
    prepared.files.append(fd)
    data = memoryview(arrow_stream(arrow_block(table, table_rows)))
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], written)
    return f"/proc/self/fd/{fd}"
