"""The scheduler's output port: records produced and confirmed before a transaction commits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from confluent_kafka import Producer

from runtime.kafka_clients import Outgoing, produce_and_confirm

__all__ = ["KafkaPublisher", "Outgoing", "Publisher"]


class Publisher(Protocol):
    """Delivers records (read once: they may come from a generator); returns only once
    every one is acknowledged, else raises.

    The scheduler commits a batch only after `publish` returned, so a crash between the
    two re-sends (consumers deduplicate by action id) but never loses a record.
    """

    def publish(self, records: Iterable[Outgoing]) -> None: ...


class KafkaPublisher:
    """A `Publisher` over an idempotent confluent-kafka producer (acks=all)."""

    def __init__(self, producer: Producer, timeout: float = 30.0) -> None:
        self._producer = producer
        self._timeout = timeout

    def publish(self, records: Iterable[Outgoing]) -> None:
        produce_and_confirm(self._producer, records, self._timeout)

    def close(self) -> None:
        self._producer.flush(self._timeout)
