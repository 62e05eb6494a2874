"""Log lines as text or as JSON (``EDUKNIT_LOG_FORMAT``), for every process of the pipeline.

``configure(level, fmt)`` sets the root logger once per process: ``text`` is the
classic ``time LEVEL logger: message`` line; ``json`` writes one JSON object per
line (``time`` in RFC 3339 UTC, ``level``, ``logger``, ``message``, ``process``,
``thread`` and, for an exception, ``exception`` with its traceback), which log
collectors index without parsing rules. Faust's and uvicorn's loggers go through
the same root handler.
"""

from __future__ import annotations

import datetime as dt
import logging

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of a log format name (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str = "text") -> None:
    """Send every record at ``level`` and above to stderr, formatted as ``fmt``."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def dict_config(level: str, fmt: str) -> dict[str, object]:
    """``configure`` as a ``logging.config.dictConfig`` (Faust's worker replaces the
    root handlers at start with its own unless given one)."""
    formatter_spec: dict[str, object] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"eduknit": formatter_spec},
        "handlers": {
            "eduknit": {"class": "logging.StreamHandler", "formatter": "eduknit"},
        },
        "root": {"level": level.upper(), "handlers": ["eduknit"]},
    }
