"""Fault injection for tests: a switch that makes ClickHouse unavailable.

With the embedded engine (chdb) there is no server to stop, so fault tests
simulate an outage: while the flag file ``EDUKNIT_DATA_DIR/faults/clickhouse-down``
exists, every call of the process's ClickHouse client (queries, commands,
inserts) raises ``OperationalError`` the way a client of a stopped server
does. The worker's writes and state look-ups and the API's reads and
``/readyz`` ping all go through that one shared client, so all of them see the
outage; removing the file ends it.

The switch is installed only when ``EDUKNIT_FAULTS=1`` (settings refuse that in
production), so a production process has no such hook. ``install`` patches the
client's class, so that every connection of the process (the API's read pool
included) sees the outage; it is idempotent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

log = logging.getLogger(__name__)

FLAG_NAME = "clickhouse-down"
WRITES_FLAG_NAME = "clickhouse-writes-down"  # only inserts fail: reads still answer
OUTAGE_MESSAGE = "ClickHouse unavailable (fault injected: {flag} exists)"
# The client methods every query, command and insert goes through (HTTP and chdb clients).
_GATED = ("_query_with_context", "data_insert", "raw_insert", "command", "raw_query", "raw_stream")
_INSERTS = ("data_insert", "raw_insert")
_MAYBE_INSERTS = ("raw_query",)  # the embedded sink sends rows inline in an INSERT statement


def flag_path(data_path: Path) -> Path:
    """The file whose existence means "ClickHouse is down"."""
    return data_path / "faults" / FLAG_NAME


def set_clickhouse_down(data_path: Path, down: bool, *, writes_only: bool = False) -> None:
    """Start (``down=True``) or end the simulated outage of the stack on ``data_path``.

    ``writes_only`` fails only inserts (a full disk, a read-only replica).
    """
    flag = flag_path(data_path)
    if writes_only:
        flag = flag.with_name(WRITES_FLAG_NAME)
    if down:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text("ClickHouse outage injected by a fault test\n")
    else:
        flag.unlink(missing_ok=True)


def _is_insert(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    query = kwargs.get("query", args[1] if len(args) > 1 else "")
    return isinstance(query, str) and query.lstrip()[:6].upper() == "INSERT"


def _gate(
    method: Callable[..., Any], flags: tuple[Path, ...], write_flag: Path | None = None
) -> Callable[..., Any]:
    """``method`` failing while a flag exists (``write_flag`` too, for INSERT statements)."""

    @functools.wraps(method)
    def gated(*args: Any, **kwargs: Any) -> Any:
        checked = flags
        if write_flag is not None and _is_insert(args, kwargs):
            checked = (*flags, write_flag)
        for flag in checked:
            if flag.exists():
                raise OperationalError(OUTAGE_MESSAGE.format(flag=flag))
        return method(*args, **kwargs)

    gated._eduknit_original = method  # type: ignore[attr-defined]
    return gated


def install(client: Client, data_path: Path) -> Client:
    """Gate every client of ``client``'s class in this process on the outage flag (tests only).

    The class, not the object, is patched: the API reads through a pool of
    further connections to the same engine (``api.pool``), and they must fail
    too. One process has one data directory, hence one flag.
    """
    cls = type(client)
    flag = flag_path(data_path)
    for name in _GATED:
        method = cls.__dict__.get(name) or getattr(cls, name, None)
        if method is None:
            continue
        method = getattr(method, "_eduknit_original", method)
        writes_flag = flag.with_name(WRITES_FLAG_NAME)
        flags = (flag, writes_flag) if name in _INSERTS else (flag,)
        setattr(cls, name, _gate(method, flags, writes_flag if name in _MAYBE_INSERTS else None))
    log.warning("fault injection enabled: ClickHouse calls fail while %s exists", flag)
    return client


def uninstall(client: Client) -> None:
    """Take the gates off ``client``'s class again (unit tests)."""
    cls = type(client)
    for name in _GATED:
        method = cls.__dict__.get(name)
        original = getattr(method, "_eduknit_original", None)
        if original is not None:
            setattr(cls, name, original)
