"""The engine's producer confirms every record of a batch, produces failures again, and
says so in its log while the broker leaves a batch unconfirmed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from runtime.kafka_clients import Outgoing
from streams.outbox import ConfirmingProducer

Callback = Callable[[KafkaError | None, Any], None]


class FakeProducer:
    """Leaves `unconfirmed` flushes with messages outstanding, fails the first delivery of
    the values in `fail_once`, and acknowledges the rest."""

    def __init__(
        self, unconfirmed: int = 0, fail_once: frozenset[bytes] = frozenset(), ack_after: float = 0
    ):
        self.unconfirmed = unconfirmed
        self.ack_after = ack_after
        self.fail_once = set(fail_once)
        self.queued: list[tuple[bytes | None, Callback]] = []
        self.delivered: list[bytes | None] = []

    def produce(self, topic: str, key: Any = None, value: Any = None, **kw: Any) -> None:
        self.queued.append((value, kw["on_delivery"]))

    def flush(self, timeout: float) -> int:
        if self.unconfirmed:
            self.unconfirmed -= 1
            return len(self.queued)
        queued, self.queued = self.queued, []
        time.sleep(self.ack_after)  # the broker's round trip, in librdkafka's flush
        for value, on_delivery in queued:
            if value in self.fail_once:
                self.fail_once.discard(value)
                on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
            else:
                self.delivered.append(value)
                on_delivery(None, None)
        return 0

    def poll(self, timeout: float) -> int:
        return 0


def confirm(producer: FakeProducer, *values: bytes) -> None:
    out = ConfirmingProducer(producer)  # type: ignore[arg-type]
    for value in values:
        out.send(Outgoing("automation.actions", b"DEAL:1", value))
    asyncio.run(out.confirm())


def test_a_failed_delivery_is_produced_again_until_confirmed() -> None:
    producer = FakeProducer(fail_once=frozenset({b"b"}))
    confirm(producer, b"a", b"b")
    assert producer.delivered == [b"a", b"b"]


def test_a_batch_the_broker_leaves_unconfirmed_is_logged_while_the_engine_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = FakeProducer(unconfirmed=2)
    with caplog.at_level(logging.WARNING, logger="streams.outbox"):
        confirm(producer, b"a", b"b")
    assert producer.delivered == [b"a", b"b"]
    assert [r.getMessage() for r in caplog.records] == [
        "delivery unconfirmed messages=2 waited_s=5",
        "delivery unconfirmed messages=2 waited_s=10",
    ]


def test_a_confirm_made_while_another_retries_a_failure_returns_only_after_the_retry() -> None:
    # The agent's confirm and Faust's commit (faust_compat.confirm_before_commit) may
    # confirm at once: neither may return while a failed record waits to be re-sent.
    producer = FakeProducer(fail_once=frozenset({b"b"}), ack_after=0.05)
    out = ConfirmingProducer(producer)  # type: ignore[arg-type]
    returned: list[tuple[str, list[bytes | None]]] = []

    async def confirm_as(who: str) -> None:
        await out.confirm()
        returned.append((who, list(producer.delivered)))

    async def both() -> None:
        for value in (b"a", b"b"):
            out.send(Outgoing("automation.actions", b"DEAL:1", value))
        await asyncio.gather(confirm_as("agent"), confirm_as("commit"))

    asyncio.run(both())
    assert sorted(returned) == [("agent", [b"a", b"b"]), ("commit", [b"a", b"b"])]
