"""A liveness watchdog: a processor whose input waits while nothing moves is stalled.

Fed by the consumer-lag monitor's readings (lag and committed offsets of the group) and
by the processor's own progress count (e.g. batches done). When the lag stays above 0
while neither the progress count nor the committed offsets change for `stall_seconds`,
the watchdog calls `on_stall` once, with a one-line reason. A stalled process cannot be
trusted to recover by itself; the engine logs its partition state and exits non-zero
so that its supervisor starts it again, and Kafka still holds every unprocessed event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from runtime.clock import Clock

logger = logging.getLogger(__name__)

EXIT_STALLED = 70
"""Exit status of a process the watchdog stopped (EX_SOFTWARE: restart it)."""


class StallWatchdog:
    """Calls `on_stall(reason)` once the input has waited `stall_seconds` without progress.

    `progress` returns a count that grows while the processor works (thread-safe to call
    from the lag monitor's thread). Readings come through `observe`.
    """

    def __init__(
        self,
        stall_seconds: float,
        progress: Callable[[], float],
        on_stall: Callable[[str], None],
        clock: Clock,
    ) -> None:
        self._stall_seconds = stall_seconds
        self._progress = progress
        self._on_stall = on_stall
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, int] | None = None
        self._since = clock.now()
        self.stalled = False

    def observe(self, lag: int, committed: int) -> None:
        """One reading of the group: `lag` summed over its input, `committed` likewise."""
        now = self._clock.now()
        moved = (self._progress(), committed)
        with self._lock:
            if self.stalled:
                return
            if lag == 0 or moved != self._last:
                self._last, self._since = moved, now
                return
            waited = (now - self._since).total_seconds()
            if waited < self._stall_seconds:
                return
            self.stalled = True
        reason = (
            f"lag {lag} while nothing was processed and no offset was committed for {waited:.0f} s"
        )
        self._on_stall(reason)
