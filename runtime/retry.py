"""Retries of transient failures: capped exponential backoff with jitter, cut short by a stop."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import psycopg
from confluent_kafka import KafkaException

from runtime.kafka_clients import DeliveryFailed

# An outage (database down, connection lost, deadlock or serialization failure, broker
# unreachable): the batch's transaction rolled back, so retrying it is safe.
RETRYABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, DeliveryFailed, KafkaException)

FIRST = 0.2
CAP = 30.0


class Backoff:
    """Waits that double from `first` up to `cap`, each drawn between half and all of
    its step (jitter: processes retrying one outage do not return in step); `wait` ends
    early when `stop` is set; `reset` after a success."""

    def __init__(self, stop: threading.Event, first: float = FIRST, cap: float = CAP) -> None:
        self._stop = stop
        self._first = first
        self._cap = cap
        self._step = first
        self.delay = self._draw()
        """The next wait in seconds, jitter included (for the log line before `wait`)."""

    def wait(self, at_least: float = 0.0) -> bool:
        """Wait `delay` (or `at_least`, if longer: a server's Retry-After), then double
        the step; False if `stop` was set meanwhile."""
        stopped = self._stop.wait(max(self.delay, at_least))
        self._step = min(self._step * 2, self._cap)
        self.delay = self._draw()
        return not stopped

    def reset(self) -> None:
        self._step = self._first
        self.delay = self._draw()

    def _draw(self) -> float:
        return random.uniform(self._step / 2, self._step)  # noqa: S311 - jitter, not secrets


def retry(
    attempt: Callable[[], None],
    retryable: tuple[type[BaseException], ...],
    stop: threading.Event,
    on_failure: Callable[[BaseException, float], None],
) -> bool:
    """Run `attempt` until it returns; each `retryable` failure is reported to
    `on_failure(error, next_delay)` and waited out with backoff. False if `stop` was set
    first (the attempt is then left undone); any other error propagates."""
    backoff = Backoff(stop)
    while True:
        try:
            attempt()
            return True
        except retryable as exc:
            on_failure(exc, backoff.delay)
            if not backoff.wait():
                return False
