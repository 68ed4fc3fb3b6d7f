"""Which failures a scheduler loop retries, and the capped backoff between attempts."""

from __future__ import annotations

import threading

import psycopg
from confluent_kafka import KafkaException

from runtime.kafka_clients import DeliveryFailed

# An outage (database down, connection lost, deadlock or serialization failure, broker
# unreachable): the batch's transaction rolled back, so retrying it is safe.
RETRYABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, DeliveryFailed, KafkaException)

_FIRST = 0.2
_MAX = 30.0


class Backoff:
    """Doubling waits from 0.2 s up to 30 s, cut short by `stop`; reset after a success."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self.delay = _FIRST

    def wait(self) -> bool:
        """Wait the current delay and double it; False if `stop` was set meanwhile."""
        stopped = self._stop.wait(self.delay)
        self.delay = min(self.delay * 2, _MAX)
        return not stopped

    def reset(self) -> None:
        self.delay = _FIRST
