"""The scheduler's Kafka port confirms every record or raises, so nothing commits past a loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from runtime.kafka_clients import DeliveryFailed
from scheduler.publisher import KafkaPublisher, Outgoing

Callback = Callable[[KafkaError | None, Any], None]


class FakeProducer:
    """Acknowledges on flush; fails the records whose value is in `fail`; can fill up."""

    def __init__(self, fail: set[bytes] = frozenset(), unconfirmed: int = 0, full_once=False):
        self.fail = fail
        self.unconfirmed = unconfirmed
        self.full_once = full_once
        self.queued: list[tuple[str, bytes | None, bytes | None, Callback]] = []
        self.polls = 0

    def produce(
        self,
        topic: str,
        key: bytes | None = None,
        value: bytes | None = None,
        partition: int = -1,
        headers: Any = None,
        on_delivery: Callback | None = None,
    ) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        assert on_delivery is not None
        self.queued.append((topic, key, value, on_delivery))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        for _topic, _key, value, callback in self.queued:
            error = KafkaError(KafkaError._MSG_TIMED_OUT) if value in self.fail else None
            callback(error, None)
        return self.unconfirmed


RECORDS = [
    Outgoing("automation.actions", b"DEAL:1", b"a"),
    Outgoing("automation.executions", b"DEAL:1", b"e"),
]


def test_publish_returns_once_every_record_is_acknowledged() -> None:
    producer = FakeProducer()
    KafkaPublisher(producer).publish(RECORDS)  # type: ignore[arg-type]
    assert [(t, k, v) for t, k, v, _ in producer.queued] == [
        ("automation.actions", b"DEAL:1", b"a"),
        ("automation.executions", b"DEAL:1", b"e"),
    ]


def test_a_record_the_broker_did_not_acknowledge_raises_delivery_failed() -> None:
    with pytest.raises(DeliveryFailed, match="1 of 2 records failed"):
        KafkaPublisher(FakeProducer(fail={b"e"})).publish(RECORDS)  # type: ignore[arg-type]


def test_records_still_queued_after_the_timeout_raise_delivery_failed() -> None:
    # The fake's flush returns at once: the publisher retries it until its timeout.
    publisher = KafkaPublisher(FakeProducer(unconfirmed=2), timeout=0.5)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed, match="2 unconfirmed"):
        publisher.publish(RECORDS)


def test_a_full_local_queue_is_drained_and_the_record_produced_again() -> None:
    producer = FakeProducer(full_once=True)
    KafkaPublisher(producer).publish(RECORDS)  # type: ignore[arg-type]
    assert producer.polls == 1
    assert len(producer.queued) == 2
