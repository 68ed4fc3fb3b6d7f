"""Dead-letter records: the original bytes with Kafka Connect-style error headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The header names operators know from Kafka Connect's DLQ.
HEADER_TOPIC = "__connect.errors.topic"
HEADER_PARTITION = "__connect.errors.partition"
HEADER_OFFSET = "__connect.errors.offset"
HEADER_CLASS = "__connect.errors.exception.class.name"
HEADER_MESSAGE = "__connect.errors.exception.message"
HEADER_REASON = "crm_automation.errors.reason"

_MAX_MESSAGE = 1000


@dataclass(frozen=True)
class DeadLetter:
    """A message that can never be processed, and why."""

    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    error_class: str
    reason: str
    message: str

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return [
            (HEADER_TOPIC, self.source_topic.encode()),
            (HEADER_PARTITION, str(self.source_partition).encode()),
            (HEADER_OFFSET, str(self.source_offset).encode()),
            (HEADER_CLASS, self.error_class.encode()),
            (HEADER_MESSAGE, self.message[:_MAX_MESSAGE].encode("utf-8", "replace")),
            (HEADER_REASON, self.reason.encode()),
        ]


class ConsumedMessage(Protocol):
    """The part of a confluent-kafka `Message` the consume loop reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> str | bytes | None: ...
    def value(self) -> str | bytes | None: ...


def position(message: ConsumedMessage) -> tuple[str, int, int]:
    """Topic, partition, offset of a consumed (non-error) message: never None there."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise RuntimeError("consumed message without a position")
    return topic, partition, offset


def dead_letter_of(
    message: ConsumedMessage, error_class: str, reason: str, text: str
) -> DeadLetter:
    """The dead letter for a consumed message that can never be processed."""
    topic, partition, offset = position(message)
    key, value = message.key(), message.value()
    return DeadLetter(
        key=key.encode() if isinstance(key, str) else key,
        value=value.encode() if isinstance(value, str) else value,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        error_class=error_class,
        reason=reason,
        message=text,
    )
