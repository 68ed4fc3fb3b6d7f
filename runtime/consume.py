"""The one consume loop of the scheduler's ingest and of every sink.

    poll → decode → dead-letter → the process's step → retry (partitions paused) → commit

A process brings a `Step`: how to decode one message's value, and what to do with a
decoded batch (write rows, calendar events, timers). The loop does the rest, the same
way for each:

- Undecodable messages become dead letters (`DeadLetters`: produced and confirmed,
  counted, logged) before anything stores an offset past them.
- A step that fails with one of its `retryable` errors is retried whole, with jittered
  backoff (`runtime.retry.Backoff`), until it succeeds or the process is stopped. The
  consumer's partitions are paused meanwhile and polled, so the process stays in its
  group; a message that arrives anyway is sought back and read again after the resume.
- Offsets live where the step's results live (`OffsetStore`): in Postgres, written by
  the step in its own transaction (`PostgresOffsets`; Kafka's committed offsets follow
  only for lag tools), or in Kafka, committed after the step (`KafkaOffsets`).
- With `overlap`, the loop polls and decodes the next batch while the step works on the
  last one; batches still finish in order, each with its own offsets. Such a loop
  shortens the process's thread switch interval (`OVERLAP_SWITCH_INTERVAL`).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from runtime import codec, kafka_clients, offsets
from runtime.dlq import (
    STAGE_VALUE_CONVERTER,
    ConsumedMessage,
    DeadLetter,
    dead_letter_of,
    position,
)
from runtime.health import Readiness
from runtime.kafka_clients import Outgoing
from runtime.retry import retry

logger = logging.getLogger(__name__)

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
Offsets = dict[tuple[str, int], int]

_CONNECT_TIMEOUT = 10

# With `overlap`, the loop's thread decodes (pure Python, holding the GIL) while the
# step's thread waits on Postgres. After each round trip the step's thread waited up to
# the interpreter's switch interval (5 ms) for the GIL: several times a batch, so the
# overlap gained nothing. 0.5 ms makes that wait short (measured in BENCHMARKS.md).
OVERLAP_SWITCH_INTERVAL = 0.0005


def poll_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to `max_messages` usable messages: partition EOFs dropped, a fatal error raised.

    Waits up to `timeout` for the first message only, then takes what has already arrived
    (`consume(n, timeout)` would wait out its whole timeout while fewer than n are there).
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


@dataclass
class Batch(Generic[R]):
    """One polled batch, decoded: the records in order, each with its message."""

    records: list[R] = field(default_factory=list)
    messages: list[ConsumedMessage] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    next_offsets: Offsets = field(default_factory=dict)
    """The next offset per partition past every polled message, dead letters included."""


def decode_batch(messages: Sequence[ConsumedMessage], decode: Callable[[bytes], R]) -> Batch[R]:
    """Decode each message's value; those `decode` refuses (`InvalidMessage`) become
    dead letters with its reason."""
    batch: Batch[R] = Batch()
    for message in messages:
        topic, partition, offset = position(message)
        batch.next_offsets[(topic, partition)] = offset + 1
        value = message.value()
        try:
            if not isinstance(value, bytes):
                raise codec.InvalidMessage("null_value", "record without a value")
            record = decode(value)
        except codec.InvalidMessage as exc:
            batch.dead.append(
                dead_letter_of(
                    message,
                    "InvalidMessage",
                    exc.reason,
                    str(exc),
                    stage=STAGE_VALUE_CONVERTER,
                    executing_class="runtime.codec",
                    error=exc,
                )
            )
            continue
        batch.records.append(record)
        batch.messages.append(message)
    return batch


def decode_as(*types: type) -> Callable[[bytes], Any]:
    """A decoder that accepts only records of `types` (reason `unexpected_record`)."""

    def decode(value: bytes) -> Any:
        record = codec.decode(value)
        if not isinstance(record, types):
            raise codec.InvalidMessage("unexpected_record", type(record).__name__)
        return record

    return decode


class DeadLetters:
    """The dead-letter topic: letters produced and confirmed, counted by reason, logged."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        count: Callable[[str], None],
        *,
        process: str,
        timeout: float = 30.0,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._count = count
        self._process = process
        self._timeout = timeout

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Returns once every letter is confirmed (`DeliveryFailed` otherwise)."""
        if not letters:
            return
        letters = [dataclasses.replace(d, process=d.process or self._process) for d in letters]
        kafka_clients.produce_and_confirm(
            self._producer,
            [Outgoing(self._topic, d.key, d.value, d.headers()) for d in letters],
            self._timeout,
        )
        for letter in letters:
            self._count(letter.reason)
            logger.warning(
                "dead letter topic=%s partition=%s offset=%s reason=%s",
                letter.source_topic,
                letter.source_partition,
                letter.source_offset,
                letter.reason,
            )


class Step(Protocol[R]):
    """What a process does with its messages; the loop calls it from one thread."""

    @property
    def retryable(self) -> tuple[type[BaseException], ...]:
        """Errors of an outage: the whole batch is tried again after a backoff."""
        ...

    def decode(self, value: bytes) -> R:
        """One message's value as a record; `codec.InvalidMessage` dead-letters it."""
        ...

    def process(self, batch: Batch[R], dead_letters: DeadLetters) -> None:
        """Act on a batch (its own dead letters are already confirmed). A record it can
        never process goes to `dead_letters` before any offset past it is stored."""
        ...

    def close(self) -> None:
        """Release what the step holds (its loop calls this once, when it ends)."""
        ...


class OffsetStore(Protocol):
    """Where a group's offsets live, and what follows a processed batch."""

    def load(self) -> Mapping[tuple[str, int], int] | None:
        """The next offset per partition, read at every assignment (None: Kafka's)."""
        ...

    def processed(self, consumer: Consumer, next_offsets: Offsets) -> None:
        """Called once the step returned for a batch ending at `next_offsets`."""
        ...


class KafkaOffsets:
    """Offsets committed to Kafka after each batch: a redelivery must be harmless."""

    def load(self) -> None:
        return None

    def processed(self, consumer: Consumer, next_offsets: Offsets) -> None:
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            # Lost the partitions in a rebalance (e.g. during a long outage): the new owner
            # re-reads from the last commit.
            logger.warning("offset commit failed, batch will be redelivered: %s", exc)


class PostgresOffsets:
    """Offsets in Postgres, stored by the step in the transaction of its results
    (`runtime.offsets.store_offsets`): the source of truth. Kafka's committed offsets
    follow asynchronously, only so that lag tools see progress."""

    def __init__(
        self,
        database_url: str,
        group: str,
        stop: threading.Event,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self._url = database_url
        self.group = group
        self._stop = stop
        self._on_retry = on_retry

    def load(self) -> dict[tuple[str, int], int]:
        """The stored offsets, on a connection of its own; an outage is waited out."""
        loaded: dict[tuple[str, int], int] = {}

        def attempt() -> None:
            with psycopg.connect(self._url, connect_timeout=_CONNECT_TIMEOUT) as conn:
                loaded.update(offsets.stored_offsets(conn, self.group))

        def failed(exc: BaseException, delay: float) -> None:
            self._on_retry()
            logger.warning("reading stored offsets failed, retrying in %.1fs: %s", delay, exc)

        if not retry(attempt, (psycopg.OperationalError,), self._stop, failed):
            raise RuntimeError("stopped while waiting for Postgres to read stored offsets")
        return loaded

    def processed(self, consumer: Consumer, next_offsets: Offsets) -> None:
        if next_offsets:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                asynchronous=True,
            )


def assigner(
    load: Callable[[], Mapping[tuple[str, int], int] | None],
) -> Callable[[Consumer, list[TopicPartition]], None]:
    """The assignment callback of a loop whose offsets `load` reads (None: Kafka's)."""

    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Every partition resumed: librdkafka keeps a partition's pause flag across a
        # rebalance, and a partition paused during an outage, revoked, then assigned
        # back was never fetched again. A retry still running pauses it again.
        stored = load()
        if stored is not None:
            for tp in partitions:
                tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        logger.info("assigned partitions=%s", [(tp.topic, tp.partition) for tp in partitions])
        consumer.assign(partitions)
        consumer.resume(partitions)

    return on_assign


class ConsumeLoop(Generic[R]):
    """Runs `step` over `topics` until `stop` is set (see the module's docstring)."""

    def __init__(
        self,
        step: Step[R],
        *,
        consumer_config: Mapping[str, Any],
        topics: list[str],
        offsets: OffsetStore,
        dead_letters: DeadLetters,
        stop: threading.Event,
        batch_size: int,
        on_retry: Callable[[], None],
        name: str,
        readiness: Readiness | None = None,
        overlap: bool = False,
    ) -> None:
        self._step = step
        self._retryable: tuple[type[BaseException], ...] = (
            kafka_clients.DeliveryFailed,
            *step.retryable,
        )
        self._offsets = offsets
        self._dead_letters = dead_letters
        self._stop = stop
        self._batch_size = batch_size
        self._on_retry = on_retry
        self._name = name
        self._readiness = readiness
        self._overlap = overlap
        if overlap:  # process-wide: each sink and the scheduler run in a process of their own
            sys.setswitchinterval(min(sys.getswitchinterval(), OVERLAP_SWITCH_INTERVAL))
        self._halt = threading.Event()  # `stop`, or the loop ending by an error
        self._outage = threading.Event()  # set while the step is being retried
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-step")
        self._consumer = Consumer(dict(consumer_config))
        self._closed = False
        self._consumer.subscribe(topics, on_assign=assigner(offsets.load))

    def run(self) -> None:
        in_flight: tuple[Batch[R], Future[bool]] | None = None
        try:
            while not self._stop.is_set():
                messages = poll_batch(self._consumer, self._batch_size, 0.2)
                if self._readiness is not None:
                    self._readiness.ready()
                batch = decode_batch(messages, self._step.decode) if messages else None
                if in_flight is not None:
                    if not self._finish(*in_flight):
                        return  # stopped mid-outage: nothing committed past the batch
                    in_flight = None
                if batch is not None:
                    in_flight = (batch, self._worker.submit(self.process, batch))
                    if not self._overlap:
                        if not self._finish(*in_flight):
                            return
                        in_flight = None
            if in_flight is not None:
                self._finish(*in_flight)
        finally:
            self.close()

    def close(self) -> None:
        self._halt.set()  # a step still retrying gives up after its current backoff
        self._worker.shutdown(wait=True)
        if not self._closed:
            self._closed = True
            self._consumer.close()
            self._step.close()

    def process(self, batch: Batch[R]) -> bool:
        """Dead letters, then the step, retried through an outage (`run` calls it on its
        worker thread); False if a stop left the batch unprocessed."""
        letters_sent = not batch.dead

        def attempt() -> None:
            nonlocal letters_sent
            if not letters_sent:
                self._dead_letters.send(batch.dead)
                letters_sent = True
            self._step.process(batch, self._dead_letters)

        return retry(attempt, self._retryable, self._halt, self._failed)

    def _failed(self, error: BaseException, delay: float) -> None:
        if self._stop.is_set():
            self._halt.set()  # (during a wait, the loop's thread passes a stop on)
        self._on_retry()
        self._outage.set()
        logger.warning(
            "%s batch failed, retrying in %.1fs error=%s: %s",
            self._name,
            delay,
            type(error).__name__,
            error,
        )

    def _finish(self, batch: Batch[R], future: Future[bool]) -> bool:
        """Wait for the batch (polling a paused consumer during an outage), then hand its
        offsets to the store; False if a stop left it unprocessed."""
        paused = False
        try:
            while not future.done():
                if self._stop.is_set():
                    self._halt.set()
                if self._outage.is_set():
                    if not paused:
                        self._consumer.pause(self._consumer.assignment())
                        paused = True
                    self._idle(0.5)
                else:
                    try:
                        future.exception(timeout=0.5)
                    except TimeoutError:
                        pass
        finally:
            self._outage.clear()
            if paused:
                self._consumer.resume(self._consumer.assignment())
        if not future.result():
            return False
        self._offsets.processed(self._consumer, batch.next_offsets)
        return True

    def _idle(self, seconds: float) -> None:
        """Poll the paused consumer (keeps group membership). A message can still arrive
        (prefetched, or from a partition assigned meanwhile): it is sought back and its
        partition paused, so it comes again after the resume."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            message = self._consumer.poll(min(remaining, 0.5))
            if message is not None and message.error() is None:
                tp = TopicPartition(*position(message))
                self._consumer.seek(tp)
                self._consumer.pause([tp])
