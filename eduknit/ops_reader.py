"""Where the operations tools read ClickHouse: directly, or through the running process.

``open_reader(settings)`` decides:

- a ClickHouse server (``CLICKHOUSE_URL`` http/https): read it directly;
- the embedded engine, while an API answers on ``EDUKNIT_API_HOST:EDUKNIT_API_PORT``
  (``make run`` holds the engine: one process per data directory): read through
  its admin route (``api.routes.admin``) with an admin token signed with
  ``EDUKNIT_JWT_SECRET``;
- the embedded engine, nothing running: open it here.

Either way the rows are those of ``infra.ops_queries`` (JSON-friendly values).
When the engine is held by a process that does not answer, ``OpsError`` says
what to do instead of the engine's lock error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import orjson

from infra import ops_queries
from infra.clickhouse import migrate, open_client
from infra.settings import Settings
from infra.tokens import make_token

Row = Sequence[Any]
TIMEOUT = httpx.Timeout(600.0, connect=5.0)


class OpsError(RuntimeError):
    """An operations command cannot go on; the message says why and what to do."""


class Reader(Protocol):
    """Rows of the named queries of ``infra.ops_queries``."""

    where: str  # for messages: what is read

    def rows(self, dataset: str, selection: dict[str, Any] | None = None) -> list[Row]: ...

    def close(self) -> None: ...


class DirectReader:
    """Reads with a ClickHouse client of this process."""

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        self.where = where

    def rows(self, dataset: str, selection: dict[str, Any] | None = None) -> list[Row]:
        sql, parameters = ops_queries.statement(dataset, selection)
        return list(self.client.query(sql, parameters=parameters).result_rows)

    def close(self) -> None:
        self.client.close()


class HttpReader:
    """Reads through the admin route of a running API."""

    def __init__(self, base_url: str, token: str) -> None:
        self.where = f"the running API at {base_url}"
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )

    def rows(self, dataset: str, selection: dict[str, Any] | None = None) -> list[Row]:
        try:
            answer = self.http.post(f"/admin/ops/{dataset}", json=selection or {})
        except httpx.HTTPError as exc:
            raise OpsError(f"reading through {self.where} failed: {exc}") from exc
        if answer.status_code == 401:
            raise OpsError(
                f"{self.where} refused the admin token: run this command with the same "
                "EDUKNIT_JWT_SECRET as the running stack"
            )
        if answer.status_code != 200:
            raise OpsError(f"{self.where} answered {answer.status_code}: {answer.text[:300]}")
        return [orjson.loads(line) for line in answer.content.splitlines() if line]

    def close(self) -> None:
        self.http.close()


def api_base(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def api_answers(base_url: str) -> bool:
    """True when an EduKnit API answers ``/healthz`` at ``base_url``."""
    try:
        return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def admin_token(settings: Settings) -> str:
    return make_token(settings.jwt_secret, "eduknit-ops", role="admin", ttl_seconds=3600)


def open_reader(settings: Settings, via: str | None = None) -> Reader:
    """The reader for these settings (see the module); ``via``: read through this API."""
    if via:
        return HttpReader(via.rstrip("/"), admin_token(settings))
    url = settings.resolved_clickhouse_url
    if not settings.embedded_clickhouse:
        try:
            return DirectReader(open_client(url), f"ClickHouse at {url}")
        except Exception as exc:
            raise OpsError(f"ClickHouse at {url} cannot be read: {exc}") from exc
    base = api_base(settings)
    if api_answers(base):
        return HttpReader(base, admin_token(settings))
    return DirectReader(open_engine(settings), f"the embedded engine in {url[len('chdb://') :]}")


def open_engine(settings: Settings) -> Any:
    """The embedded engine of the data directory, opened in this process; ``OpsError``
    when another process holds it."""
    url = settings.resolved_clickhouse_url
    try:
        client = open_client(url)
    except Exception as exc:
        raise OpsError(
            f"the embedded ClickHouse in {settings.data_path / 'clickhouse'} is in use by "
            f"another process, and no EduKnit API answers at {api_base(settings)} to go "
            "through. If `make run` is starting, wait until it logs 'EduKnit Learn is up' "
            "and run this again; if it listens elsewhere, set EDUKNIT_API_PORT (or pass "
            f"--via URL); otherwise stop the process that holds it. ({exc})"
        ) from exc
    migrate(client)  # a new data directory: the tables, empty
    return client
