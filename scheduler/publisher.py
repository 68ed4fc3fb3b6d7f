"""The scheduler's output port: records produced and confirmed before a transaction commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from runtime.kafka_clients import DeliveryFailed, Outgoing

__all__ = ["KafkaPublisher", "Outgoing", "Publisher"]


class Publisher(Protocol):
    """Delivers records; returns only once every one is acknowledged, else raises.

    The scheduler commits a batch only after `publish` returned, so a crash between the
    two re-sends (consumers deduplicate by action id) but never loses a record.
    """

    def publish(self, records: Sequence[Outgoing]) -> None: ...


class KafkaPublisher:
    """A `Publisher` over an idempotent confluent-kafka producer (acks=all)."""

    def __init__(self, producer: Producer, timeout: float = 30.0) -> None:
        self._producer = producer
        self._timeout = timeout

    def publish(self, records: Sequence[Outgoing]) -> None:
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        for record in records:
            while True:
                try:
                    self._producer.produce(
                        record.topic,
                        key=record.key,
                        value=record.value,
                        headers=record.headers,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:  # local queue full: serve callbacks, then retry
                    self._producer.poll(0.1)
        remaining = self._producer.flush(self._timeout)
        if failures or remaining:
            first = f"; first error: {failures[0]}" if failures else ""
            raise DeliveryFailed(
                f"{len(failures)} of {len(records)} records failed and {remaining} "
                f"unconfirmed{first}"
            )

    def close(self) -> None:
        self._producer.flush(self._timeout)
