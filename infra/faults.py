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
client object in place, which is what every thread of the process already
holds; it is idempotent.
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
OUTAGE_MESSAGE = "ClickHouse unavailable (fault injected: {flag} exists)"
# The client methods every query, command and insert goes through (HTTP and chdb clients).
_GATED = ("_query_with_context", "data_insert", "raw_insert", "command", "raw_query", "raw_stream")


def flag_path(data_path: Path) -> Path:
    """The file whose existence means "ClickHouse is down"."""
    return data_path / "faults" / FLAG_NAME


def set_clickhouse_down(data_path: Path, down: bool) -> None:
    """Start (``down=True``) or end the simulated outage of the stack on ``data_path``."""
    flag = flag_path(data_path)
    if down:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text("ClickHouse outage injected by a fault test\n")
    else:
        flag.unlink(missing_ok=True)


def _gate(method: Callable[..., Any], flag: Path) -> Callable[..., Any]:
    @functools.wraps(method)
    def gated(*args: Any, **kwargs: Any) -> Any:
        if flag.exists():
            raise OperationalError(OUTAGE_MESSAGE.format(flag=flag))
        return method(*args, **kwargs)

    return gated


def install(client: Client, data_path: Path) -> Client:
    """Gate ``client``'s calls on the outage flag under ``data_path`` (tests only)."""
    if getattr(client, "_eduknit_fault_flag", None) is not None:
        return client
    flag = flag_path(data_path)
    for name in _GATED:
        method = getattr(client, name, None)
        if method is not None:
            setattr(client, name, _gate(method, flag))
    client._eduknit_fault_flag = flag  # type: ignore[attr-defined]
    log.warning("fault injection enabled: ClickHouse calls fail while %s exists", flag)
    return client
