"""A batching Kafka consumer whose offsets live in Postgres, next to the results."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

logger = logging.getLogger(__name__)

OffsetLoader = Callable[[], Mapping[tuple[str, int], int]]


def poll_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to `max_messages` usable messages: partition EOFs dropped, a fatal error raised.

    Waits up to `timeout` for the first message only, then takes what has already arrived:
    `consume(n, timeout)` waits out its whole timeout while fewer than n are there, which
    added up to `timeout` of latency to every batch below full load (issue 8).
    """
    batch = []
    messages = consumer.consume(1, timeout)
    if messages and max_messages > 1:
        messages += consumer.consume(max_messages - 1, 0)
    for message in messages:
        error = message.error()
        if error is None:
            batch.append(message)
        elif error.code() == KafkaError._PARTITION_EOF:
            continue
        elif error.fatal():
            raise RuntimeError(f"fatal consumer error: {error}")
        else:
            logger.warning("consumer error code=%s", error.code())
    return batch


class BatchConsumer:
    """Subscribes to topics; on every assignment seeks to the offsets stored in Postgres.

    Kafka's committed offsets are written too (after the database commit) only so that
    lag tools see progress; the database is the source of truth.
    """

    def __init__(self, config: Mapping[str, Any], topics: list[str], load: OffsetLoader):
        self._consumer = Consumer(dict(config))
        self._load = load
        self._consumer.subscribe(topics, on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._load()
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        logger.info("assigned partitions=%s", [(tp.topic, tp.partition) for tp in partitions])
        consumer.assign(partitions)

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        return poll_batch(self._consumer, max_messages, timeout)

    def commit_for_lag(self, next_offsets: Mapping[tuple[str, int], int]) -> None:
        if next_offsets:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                asynchronous=True,
            )

    def close(self) -> None:
        self._consumer.close()
