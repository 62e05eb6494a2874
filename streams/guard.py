"""The invalid-ratio guard: stop the worker when most of the stream is invalid.

A few bad messages go to the dead-letter topic and the stream goes on. A stream
that is mostly invalid is a different failure: a broken producer deploy, a
schema change, the wrong topic. Dead-lettering all of it would hide the outage
and move the whole stream into the DLQ, so instead the worker stops loudly.

``InvalidRatioGuard`` keeps a sliding window of the last ``window`` messages
(one bit each: dead-lettered or not) and, once it holds at least ``min_count``
messages, raises ``TooManyInvalid`` when the share of invalid ones is above
``max_ratio``. The worker checks a batch before it sends its dead letters,
writes its rows or acknowledges it, so a batch that trips the guard is never
committed: after the cause is fixed (or the limit raised) a restarted worker
re-reads it. ``max_ratio = 1`` turns the guard off.

Pure and synchronous: no I/O, no clock; unit-tested in ``tests/unit/test_guard.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# The exit code of a worker the guard stopped: it asks its supervisor not to restart
# it (a restart would read the same invalid stream again).
EXIT_FATAL = 3


class TooManyInvalid(RuntimeError):
    """The share of invalid messages in the window is over the limit."""

    def __init__(self, invalid: int, total: int, max_ratio: float) -> None:
        self.invalid = invalid
        self.total = total
        self.max_ratio = max_ratio
        super().__init__(
            f"{invalid} of the last {total} messages were invalid "
            f"({invalid / total:.0%} > limit {max_ratio:.0%}, EDUKNIT_MAX_INVALID_RATIO): "
            "stopping instead of dead-lettering the stream; fix the producer or raise the limit"
        )


@dataclass(slots=True, frozen=True)
class GuardStatus:
    """What the window holds after a batch."""

    invalid: int
    total: int

    @property
    def ratio(self) -> float:
        return self.invalid / self.total if self.total else 0.0


class InvalidRatioGuard:
    """Sliding window over the last ``window`` messages; see the module docstring."""

    def __init__(self, window: int = 1000, max_ratio: float = 0.5, min_count: int = 100) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if not 0.0 < max_ratio <= 1.0:
            raise ValueError("max_ratio must be in (0, 1]")
        if not 1 <= min_count <= window:
            raise ValueError("min_count must be between 1 and window")
        self.window = window
        self.max_ratio = max_ratio
        self.min_count = min_count
        self._bits: deque[bool] = deque(maxlen=window)
        self._invalid = 0

    @property
    def status(self) -> GuardStatus:
        return GuardStatus(self._invalid, len(self._bits))

    def record(self, total: int, invalid: int) -> GuardStatus:
        """Add a batch of ``total`` messages, ``invalid`` of them rejected; raise if over.

        The batch's invalid messages are placed last, the worst case for the
        window; the ratio is checked once per batch, after all of it is in.
        """
        if not 0 <= invalid <= total:
            raise ValueError(f"invalid ({invalid}) must be between 0 and total ({total})")
        bits = self._bits
        # Only the last ``window`` messages of the batch can stay in the window.
        skip = max(0, total - self.window)
        valid_left = max(0, total - invalid - skip)
        invalid_left = min(invalid, total - skip)
        for flag, count in ((False, valid_left), (True, invalid_left)):
            for _ in range(count):
                if len(bits) == bits.maxlen and bits[0]:
                    self._invalid -= 1
                bits.append(flag)
            if flag:
                self._invalid += count
        status = self.status
        if status.total >= self.min_count and status.ratio > self.max_ratio:
            raise TooManyInvalid(status.invalid, status.total, self.max_ratio)
        return status
