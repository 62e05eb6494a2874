"""Progress of a long operations command: a bar on a terminal, plain lines otherwise.

``Progress(what, total, unit)`` shows done/total ``unit`` (students, events), the
rate of ``events`` (what the work is made of: counted events rebuilt, lines
sent) per second and the time left. On a terminal it is a rich progress bar on
stderr; when stderr is not a terminal (a log, CI) it is one plain line every
``PLAIN_EVERY`` seconds and one at the end, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

PLAIN_EVERY = 5.0


class Progress:
    """Counts done work and shows it (see the module); ``close`` at the end."""

    def __init__(
        self,
        what: str,
        total: int | None,
        unit: str,
        *,
        stream: IO[str] | None = None,
        bar: bool | None = None,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.events = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._rich: Any = None
        if bar if bar is not None else self.stream.isatty():
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._rich = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(self.unit),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._rich.start()
        self._task = self._rich.add_task(self.what, total=self.total, rate="")

    @property
    def rate(self) -> float:
        """Events per second so far."""
        return self.events / max(time.monotonic() - self.started, 1e-9)

    def eta(self) -> float | None:
        """Seconds left at the pace so far (None when unknown)."""
        if not self.total or not self.done:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed * (self.total - self.done) / self.done

    def update(self, done: int, events: int | None = None) -> None:
        """Set the done count (and the events behind it)."""
        self.done = done
        if events is not None:
            self.events = events
        if self._rich is not None:
            self._rich.update(self._task, completed=done, rate=f"{self.rate:,.0f} events/s")
        elif time.monotonic() - self._last_line >= PLAIN_EVERY:
            self._line()

    def advance(self, done: int, events: int = 0) -> None:
        """Add ``done`` units and ``events`` events."""
        self.update(self.done + done, self.events + events)

    def _line(self) -> None:
        self._last_line = time.monotonic()
        total = f"/{self.total:,}" if self.total is not None else ""
        eta = self.eta()
        left = f", ETA {eta:,.0f} s" if eta is not None else ""
        print(
            f"{self.what}: {self.done:,}{total} {self.unit}, {self.rate:,.0f} events/s{left}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        else:
            self._line()
