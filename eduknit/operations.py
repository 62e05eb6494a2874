"""The operations commands of ``eduknit``: ``check``, ``resync``, ``import`` (docs/operations.md).

``add_commands`` adds their arguments to the CLI's parser, ``run`` runs one.
The commands themselves live in ``eduknit.check``, ``eduknit.resync`` and
``eduknit.backfill``. Exit codes: 0 done and clean, 1 a difference found or a
line/student not done, 2 could not run (the message says what to do).
"""

from __future__ import annotations

import argparse
import logging

from infra.settings import Settings
from streams.resync import WAVE_STUDENTS

COMMANDS = ("check", "resync", "import")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check``, ``resync`` and ``import`` to the subcommands ``sub``."""
    check = sub.add_parser(
        "check", help="compare dashboards with a recomputation from the counted events"
    )
    which = check.add_mutually_exclusive_group()
    which.add_argument(
        "--students",
        type=int,
        default=500,
        metavar="N",
        help="a random sample of N students (default 500)",
    )
    which.add_argument("--all", action="store_true", help="every student")
    check.add_argument("--via", metavar="URL", help="read through this running API")

    resync = sub.add_parser(
        "resync", help="rebuild students' aggregates and dashboards from the counted events"
    )
    chosen = resync.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--student", action="append", metavar="ID", help="a student (repeat)")
    chosen.add_argument("--all", action="store_true", help="every student")
    resync.add_argument("--via", metavar="URL", help="read the student list through this API")
    resync.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for the worker (default 3600)",
    )
    resync.add_argument(
        "--wave",
        type=int,
        default=WAVE_STUDENTS,
        help=f"students whose rebuild the worker is asked for at once (default {WAVE_STUDENTS}): "
        "live events wait for at most one wave",
    )

    backfill = sub.add_parser("import", help="send a JSON-lines file of events to Kafka")
    backfill.add_argument("file", help="JSON lines of events, - for stdin")
    backfill.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="at most this many events per second (default: no limit)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the operations command of ``args``."""
    for noisy in ("httpx", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "check":
        from eduknit.check import run_check

        return run_check(settings, args.students, args.all, via=args.via)
    if args.command == "resync":
        from eduknit.resync import run_resync

        return run_resync(
            settings,
            args.student or [],
            args.all,
            via=args.via,
            timeout=args.timeout,
            wave=args.wave,
        )
    from eduknit.backfill import run_import

    return run_import(settings, args.file, rate=args.rate)
