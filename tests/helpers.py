"""Polling with a deadline, for tests that wait for a condition instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call `predicate` until it returns something truthy, and return that value.

    Raises AssertionError naming `what` (or the predicate) when `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"not true within {timeout}s: {name} (last value {result!r})")
        time.sleep(interval)
