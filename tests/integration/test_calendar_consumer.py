"""The calendar sink's consumer: a partition paused during a retry is fetched again after
a rebalance gives it back (librdkafka keeps pause flags across rebalances)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from runtime import kafka_clients, topics
from runtime.consume import KafkaOffsets, assigner
from runtime.settings import Settings
from sinks.calendar.process import GROUP
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_a_partition_paused_then_revoked_and_given_back_is_consumed_again(
    settings: Settings,
) -> None:
    topic = settings.topic(topics.ACTIONS)
    config = kafka_clients.consumer_config(settings, settings.group(GROUP))
    sink = Consumer(config)
    sink.subscribe([topic], on_assign=assigner(KafkaOffsets().load))
    wait_for(
        lambda: sink.poll(0.2) is None and len(sink.assignment()) == settings.partitions,
        timeout=60,
        what="the sink owning every partition",
    )
    sink.pause(sink.assignment())  # what an outage retry does

    twin = Consumer(config)
    twin.subscribe([topic])
    wait_for(
        lambda: (sink.poll(0.1), twin.poll(0.1)) and 0 < len(twin.assignment()),
        timeout=60,
        what="the twin taking partitions",
    )
    twin.close()  # its partitions go back to the sink
    wait_for(
        lambda: sink.poll(0.1) is None and len(sink.assignment()) == settings.partitions,
        timeout=60,
        what="the sink owning every partition again",
    )

    producer = Producer(kafka_clients.producer_config(settings))
    for partition in range(settings.partitions):
        producer.produce(topic, value=b"x", partition=partition)
    kafka_clients.flush_or_raise(producer)
    seen: set[int] = set()

    def every_partition_delivers() -> bool:
        message = sink.poll(0.2)
        if message is not None and message.error() is None:
            seen.add(message.partition())
        return len(seen) == settings.partitions

    try:
        wait_for(every_partition_delivers, timeout=30, what="a message from every partition")
    finally:
        sink.close()
