"""At most N requests per window per key, in this process (pure logic, clock injected).

``SlidingWindow.admit(key)`` keeps the times of the key's admitted requests of
the last ``window`` seconds: the request is admitted (and its time kept) while
fewer than ``limit`` are there, else refused with the seconds until the oldest
leaves the window (what ``Retry-After`` says, rounded up). A refused request is
not kept, so a client that waits as told is admitted. At most ``max_keys``
keys are tracked (the least recently used are dropped first), so memory stays
bounded whatever the number of clients; a key dropped while still inside its
window would get a fresh one, which takes more than ``max_keys`` (100k) other
clients within a window.

Per process: API replicas each allow ``limit`` (docs/api.md says so).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindow:
    """``limit`` requests per ``window`` seconds per key (see the module)."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def admit(self, key: str) -> int | None:
        """None when admitted, else the whole seconds to wait (at least 1)."""
        now = self.clock()
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque()
            while len(self._times) > self.max_keys:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        start = now - self.window
        while times and times[0] <= start:
            times.popleft()
        if len(times) >= self.limit:
            return max(1, math.ceil(times[0] - start))
        times.append(now)
        return None

    def __len__(self) -> int:
        return len(self._times)
