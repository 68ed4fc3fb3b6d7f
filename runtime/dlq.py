"""Dead-letter records: the original bytes with Kafka Connect's error headers."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Protocol

# The header names operators know from Kafka Connect's DLQ.
HEADER_TOPIC = "__connect.errors.topic"
HEADER_PARTITION = "__connect.errors.partition"
HEADER_OFFSET = "__connect.errors.offset"
HEADER_CLASS = "__connect.errors.exception.class.name"
HEADER_MESSAGE = "__connect.errors.exception.message"
HEADER_STACKTRACE = "__connect.errors.exception.stacktrace"
HEADER_CONNECTOR = "__connect.errors.connector.name"
HEADER_TASK = "__connect.errors.task.id"
HEADER_STAGE = "__connect.errors.stage"
HEADER_EXECUTING_CLASS = "__connect.errors.class.name"
HEADER_REASON = "crm_automation.errors.reason"

# Kafka Connect's stages, as they apply here: a message that does not decode, a record
# the rules could not process, a write the target refused, an output too large to produce.
STAGE_VALUE_CONVERTER = "VALUE_CONVERTER"
STAGE_TRANSFORMATION = "TRANSFORMATION"
STAGE_TASK_PUT = "TASK_PUT"
STAGE_KAFKA_PRODUCE = "KAFKA_PRODUCE"

_MAX_MESSAGE = 1000
_MAX_STACKTRACE = 8000


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
    stage: str = ""
    """Kafka Connect's stage name (`STAGE_*`)."""
    executing_class: str = ""
    """The class or module that met the error."""
    stacktrace: str = ""
    process: str = ""
    """The process that dead-lettered it (Connect's connector name), set on sending."""

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        headers: list[tuple[str, str | bytes | None]] = [
            (HEADER_TOPIC, self.source_topic.encode()),
            (HEADER_PARTITION, str(self.source_partition).encode()),
            (HEADER_OFFSET, str(self.source_offset).encode()),
            (HEADER_CLASS, self.error_class.encode()),
            (HEADER_MESSAGE, self.message[:_MAX_MESSAGE].encode("utf-8", "replace")),
            (HEADER_REASON, self.reason.encode()),
        ]
        for name, text in (
            (HEADER_STAGE, self.stage),
            (HEADER_EXECUTING_CLASS, self.executing_class),
            (HEADER_CONNECTOR, self.process),
            (HEADER_TASK, "0" if self.process else ""),
            (HEADER_STACKTRACE, self.stacktrace[-_MAX_STACKTRACE:]),
        ):
            if text:
                headers.append((name, text.encode("utf-8", "replace")))
        return headers


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
    message: ConsumedMessage,
    error_class: str,
    reason: str,
    text: str,
    *,
    stage: str = "",
    executing_class: str = "",
    error: BaseException | None = None,
) -> DeadLetter:
    """The dead letter for a consumed message that can never be processed (`error`: the
    exception met, for its stack trace)."""
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
        stage=stage,
        executing_class=executing_class,
        stacktrace=stacktrace_of(error),
    )


def stacktrace_of(error: BaseException | None) -> str:
    return "" if error is None else "".join(traceback.format_exception(error))
