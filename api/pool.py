"""Several connections to the embedded ClickHouse for the API's concurrent reads.

One clickhouse-connect chdb client runs one query at a time (it holds a lock
around the engine call), so with one client the API answers one dashboard at a
time, however many threads FastAPI runs. The engine itself runs queries from
several connections of the same process in parallel (measured: 1 client 97
dashboard queries/s, 2 clients 172/s on 2 cores). ``read_pool`` therefore gives
the API ``READ_CONNECTIONS`` clients of the same engine behind one object with
the ``query``/``command`` methods the read path uses; each call borrows a free
client. It does so only for this process's shared embedded client
(``infra.clickhouse.shared_client``): a client over HTTP is already safe to use
from many threads at once, and a client a caller made itself is left alone.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from clickhouse_connect.driver.client import Client

from infra import clickhouse
from infra.settings import Settings

log = logging.getLogger(__name__)

READ_CONNECTIONS = 4


class ClientPool:
    """Lends one of several clients per call; the first one is the caller's (not closed here)."""

    def __init__(self, clients: list[Client]) -> None:
        self.clients = clients
        self._free: queue.SimpleQueue[Client] = queue.SimpleQueue()
        for client in clients:
            self._free.put(client)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        client = self._free.get()
        try:
            return client.query(*args, **kwargs)
        finally:
            self._free.put(client)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        client = self._free.get()
        try:
            return client.command(*args, **kwargs)
        finally:
            self._free.put(client)

    def raw_query(self, *args: Any, **kwargs: Any) -> Any:
        client = self._free.get()
        try:
            return client.raw_query(*args, **kwargs)
        finally:
            self._free.put(client)

    def close(self) -> None:
        """Close the extra clients (the first belongs to whoever passed it)."""
        for client in self.clients[1:]:
            try:
                client.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing a pooled ClickHouse client failed", exc_info=True)


def read_pool(settings: Settings, client: Client, size: int = READ_CONNECTIONS) -> Client:
    """``client``, or a pool of ``size`` clients of the same embedded engine (see above)."""
    url = settings.resolved_clickhouse_url
    if size <= 1 or not settings.embedded_clickhouse or clickhouse.shared(url) is not client:
        return client
    try:
        extra = [clickhouse.open_client(url) for _ in range(size - 1)]
    except Exception as exc:  # the engine refused more connections: one is still correct
        log.warning("ClickHouse read pool not opened, using one connection: %s", exc)
        return client
    return ClientPool([client, *extra])  # type: ignore[return-value]
