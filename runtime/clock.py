"""Time as a dependency: the real clock, and a fake one that tests move by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current time (tz-aware UTC) and waits; nothing else reads the clock."""

    def now(self) -> datetime: ...

    def wait(self, seconds: float, wake: threading.Event) -> bool:
        """Wait up to `seconds` (clock time) or until `wake` is set; True if woken."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, wake: threading.Event) -> bool:
        return wake.wait(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told: 180 days pass in one call."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._moved = threading.Condition(self._lock)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._moved:
            self._now += delta
            self._moved.notify_all()

    def set(self, moment: datetime) -> None:
        with self._moved:
            self._now = moment
            self._moved.notify_all()

    def wait(self, seconds: float, wake: threading.Event) -> bool:
        """Return when woken or when the clock moved; never sleeps through fake time."""
        if wake.is_set():
            return True
        with self._moved:
            self._moved.wait(timeout=min(seconds, 0.05))
        return wake.is_set()
