"""Command line: ``python -m eduknit.cli run|worker|api|migrate|demo|token|check|resync|import``.

- ``run``: the whole pipeline: a supervisor owning the embedded broker (unless
  ``KAFKA_BOOTSTRAP_SERVERS`` is set) and restarting ``serve`` if it dies.
- ``serve``: the Faust worker and the API in this process, sharing one
  ClickHouse client (the embedded engine allows one process per data directory).
- ``worker`` / ``api``: one part each, for a ClickHouse server and an existing Kafka.
- ``migrate``: apply the ClickHouse migrations and exit.
- ``demo``: fill a running stack with a realistic sample and print a token.
- ``token``: print a signed JWT for a student (or another role).
- ``check`` / ``resync`` / ``import``: operations (``eduknit.operations``).
Everything started here is stopped here, by PID, on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from eduknit import operations
from infra import logs
from infra.memory import keep_out, limit_arenas
from infra.settings import Settings, get_settings

log = logging.getLogger("eduknit")

# uvicorn's HTTP/1.1 parser: httptools (C) rather than h11 (pure Python, uvicorn's
# fallback when httptools is not installed). Named, so a missing package fails at
# start instead of silently costing ~13 % of /realtime's requests/s (BENCHMARKS.md).
API_HTTP = "httptools"


def _logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)  # EDUKNIT_LOG_FORMAT: text | json


class ApiThread:
    """Uvicorn serving the API from a thread of this process."""

    def __init__(self, settings: Settings, client: object) -> None:
        import uvicorn

        from api.main import create_app
        from api.publisher import KafkaEventPublisher
        from api.serving import ApiServer

        self.publisher = KafkaEventPublisher(settings.bootstrap_servers)
        app = create_app(settings, client, self.publisher)
        config = uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_level="warning",
            access_log=False, lifespan="on", http=API_HTTP,
        )  # fmt: skip
        self.server = ApiServer(config)  # ends the live streams first when it stops
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start (is the port in use?)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.publisher.close()


def _run_faust(settings: Settings, client: object) -> None:
    import faust

    from infra.clickhouse import open_client
    from streams.app import Worker
    from streams.sink import ClickHouseSink

    writer = open_client(settings.resolved_clickhouse_url)  # inserts off the look-ups' client
    sink = ClickHouseSink(client, writer, embedded_engine=settings.embedded_clickhouse)  # type: ignore[arg-type]
    worker = Worker(settings, sink)
    as_json = (
        logs.dict_config(settings.log_level, "json") if settings.log_format == "json" else None
    )
    faust.Worker(
        worker.app, loglevel=settings.log_level, quiet=True, logging_config=as_json
    ).execute_from_commandline()


def cmd_run(settings: Settings) -> int:
    """Supervisor: broker + a restarted-on-failure worker/API process."""
    from eduknit.supervisor import Supervisor

    return Supervisor(settings).run()


def cmd_serve(settings: Settings) -> int:
    """Worker + API in this process (what ``run`` supervises)."""
    from infra.clickhouse import close_shared, shared_client
    from infra.topics import ensure_topics

    ensure_topics(settings.bootstrap_servers, settings.partitions)
    api: ApiThread | None = None
    try:
        client = shared_client(settings.resolved_clickhouse_url)
        api = ApiThread(settings, client)
        api.start()
        _run_faust(settings, client)
    finally:
        if api is not None:
            api.stop()
        close_shared()
    return 0


def cmd_worker(settings: Settings) -> int:
    """Only the Faust worker (with a ClickHouse server and an existing Kafka)."""
    from infra.clickhouse import close_shared, shared_client
    from infra.topics import ensure_topics

    ensure_topics(settings.bootstrap_servers, settings.partitions)
    try:
        _run_faust(settings, shared_client(settings.resolved_clickhouse_url))
    finally:
        close_shared()
    return 0


def cmd_api(settings: Settings) -> int:
    """Only the API (with a ClickHouse server and an existing Kafka)."""
    import uvicorn

    from api.main import create_app
    from api.publisher import KafkaEventPublisher
    from api.serving import ApiServer
    from infra.clickhouse import close_shared, shared_client

    publisher = KafkaEventPublisher(settings.bootstrap_servers)
    try:
        client = shared_client(settings.resolved_clickhouse_url)
        if settings.faults:  # tests only (EDUKNIT_FAULTS=1): the ClickHouse outage switch
            from infra import faults

            faults.install(client, settings.data_path)
        app = create_app(settings, client, publisher)
        config = uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_level="warning",
            http=API_HTTP,
        )  # fmt: skip
        ApiServer(config).run()  # uvicorn.run, ending the live streams first when it stops
    finally:
        publisher.close()
        close_shared()
    return 0


def cmd_migrate(settings: Settings) -> int:
    from infra.clickhouse import connect, migrate

    applied = migrate(connect(settings.resolved_clickhouse_url))
    print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    return 0


def cmd_token(settings: Settings, student_id: str, role: str, hours: float) -> int:
    from infra.tokens import make_token

    token = make_token(settings.jwt_secret, student_id, role=role, ttl_seconds=hours * 3600)
    print(token)  # alone on stdout, for TOKEN=$(eduknit token s1)
    print(f"dashboard: {page_url(settings, token)}", file=sys.stderr)
    return 0


def page_url(settings: Settings, token: str) -> str:
    """The dashboard page signed in with ``token`` (in the fragment: never sent to the server)."""
    return f"http://{settings.api_host}:{settings.api_port}/#token={token}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eduknit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve", "worker", "api", "migrate"):
        sub.add_parser(name)
    demo = sub.add_parser("demo", help="fill the running stack with a sample")
    demo.add_argument("--students", type=int, default=500)
    demo.add_argument("--courses", type=int, default=10)
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--seed", type=int, default=7)
    token = sub.add_parser("token", help="print a JWT")
    token.add_argument("student_id")
    token.add_argument("--role", default="student", choices=["student", "service", "admin"])
    token.add_argument("--hours", type=float, default=24.0)
    operations.add_commands(sub)  # check, resync, import
    args = parser.parse_args(argv)

    try:
        settings = get_settings()
    except Exception as exc:  # invalid configuration: say which variable
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    _logging(settings)
    limit_arenas()  # before the engine's and the executor's threads allocate
    if args.command in ("serve", "worker"):
        keep_out("pandas")  # nothing here uses DataFrames: see infra.memory
    if args.command == "run":
        return cmd_run(settings)
    if args.command == "serve":
        return cmd_serve(settings)
    if args.command == "worker":
        return cmd_worker(settings)
    if args.command == "api":
        return cmd_api(settings)
    if args.command == "migrate":
        return cmd_migrate(settings)
    if args.command == "token":
        return cmd_token(settings, args.student_id, args.role, args.hours)
    if args.command in operations.COMMANDS:
        return operations.run(settings, args)
    from eduknit.demo import run_demo

    return run_demo(settings, args.students, args.courses, args.days, args.seed)


if __name__ == "__main__":
    sys.exit(main())
