"""`crm-automation sink calendar`: planned activities into CalDAV calendars.

Offsets are committed to Kafka only after the batch's calendar writes, its executions
and its dead letters are confirmed; a redelivered batch is harmless (every write is
idempotent). During an outage the consumer pauses its partitions and keeps polling, so
it stays in the group while the batch is retried with capped exponential backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from automation_core.model import Action, ActionMode, PlanActivity
from runtime import codec, kafka_clients, topics
from runtime.clock import Clock, SystemClock
from runtime.consume import poll_batch
from runtime.dlq import DeadLetter, dead_letter_of, position
from runtime.health import Readiness
from runtime.settings import Settings
from sinks.calendar.caldav_client import CalDAVClient, CalDAVUnavailable
from sinks.calendar.events import Addressing
from sinks.calendar.store import PostgresEventLog, StoreUnavailable
from sinks.calendar.writer import BatchOutcome, CalendarWriter
from sinks.metrics import SinkMetrics

logger = logging.getLogger(__name__)

GROUP = "crm-automation-sink-calendar"
SINK = "calendar"
PROCESS = "sink_calendar"
_FIRST_BACKOFF = 0.2
_MAX_BACKOFF = 30.0


def build_writer(settings: Settings, clock: Clock) -> CalendarWriter:
    """The writer for the configured CalDAV server and database (connects lazily)."""
    if not settings.caldav_url:
        raise RuntimeError("no CalDAV server configured: set CRM_AUTOMATION_CALDAV_URL")
    if settings.database_url is None:
        raise RuntimeError("no database configured: set CRM_AUTOMATION_DATABASE_URL")
    password = settings.caldav_password.get_secret_value() if settings.caldav_password else None
    calendars = CalDAVClient(
        settings.caldav_url,
        timeout=settings.caldav_timeout_seconds,
        username=settings.caldav_username,
        password=password,
        max_connections=settings.caldav_concurrency,
    )
    return CalendarWriter(
        calendars,
        PostgresEventLog(settings.database_url.get_secret_value()),
        clock,
        addressing=Addressing(settings.calendar_user_domain, settings.calendar_room_domain),
        concurrency=settings.caldav_concurrency,
    )


def run(
    settings: Settings,
    metrics: SinkMetrics,
    stop: threading.Event,
    *,
    writer: CalendarWriter | None = None,
    clock: Clock | None = None,
    group: str | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Consume `automation.actions` until `stop` is set (`group`: for replays in tests)."""
    group = group or settings.group(GROUP)
    clock = clock or SystemClock()
    writer = writer or build_writer(settings, clock)
    consumer = Consumer(kafka_clients.consumer_config(settings, group))
    consumer.subscribe([settings.topic(topics.ACTIONS)], on_assign=_assign_unpaused)
    producer = Producer(kafka_clients.producer_config(settings))
    logger.info("calendar sink started group=%s", group)
    try:
        while not stop.is_set():
            messages = poll_batch(consumer, settings.batch_size, 0.2)
            if readiness is not None:
                readiness.ready()
            if not messages:
                continue
            actions, positions, dead = [], [], []
            for message in messages:
                try:
                    record = codec.decode(message.value() or b"")
                except codec.InvalidMessage as exc:
                    dead.append(dead_letter_of(message, "InvalidMessage", exc.reason, str(exc)))
                    continue
                if not isinstance(record, Action):
                    dead.append(
                        dead_letter_of(
                            message, "InvalidMessage", "unexpected_record", type(record).__name__
                        )
                    )
                    continue
                actions.append(record)
                positions.append(message)
            outcome = _write_with_retry(writer, actions, consumer, metrics, stop)
            if outcome is None:
                break  # stopping mid-outage: nothing committed, the batch is read again
            for index, error in outcome.rejected.items():
                letter = dead_letter_of(
                    positions[index], "CalDAVRejected", error.reason, str(error)
                )
                dead.append(letter)
            _publish(producer, settings, outcome, dead, metrics)
            _commit(consumer, messages)
            _observe(outcome, actions, clock.now(), metrics)
    finally:
        consumer.close()
        producer.flush(10)
        writer.close()


def _assign_unpaused(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Take the assignment with every partition resumed.

    librdkafka keeps a partition's pause flag across a rebalance: a partition paused during
    an outage retry, revoked, then assigned back was never fetched again (its actions
    stayed unwritten; found by the reliability suite's stall scenario). If a retry is still
    running, `_idle` pauses whatever arrives again.
    """
    consumer.assign(partitions)
    consumer.resume(partitions)


def _write_with_retry(
    writer: CalendarWriter,
    actions: list[Action],
    consumer: Consumer,
    metrics: SinkMetrics,
    stop: threading.Event,
) -> BatchOutcome | None:
    """Write until it succeeds (None if stopped first); partitions paused meanwhile."""
    backoff, paused = _FIRST_BACKOFF, False
    try:
        while True:
            try:
                with metrics.batch_seconds.labels(SINK).time():
                    return writer.write(actions)
            except (CalDAVUnavailable, StoreUnavailable) as exc:
                metrics.retries.labels(SINK).inc()
                logger.warning(
                    "calendar batch failed, retrying in %.1fs error=%s: %s",
                    backoff,
                    type(exc).__name__,
                    exc,
                )
                if not paused:
                    consumer.pause(consumer.assignment())
                    paused = True
                if _idle(consumer, backoff, stop):
                    return None
                backoff = min(backoff * 2, _MAX_BACKOFF)
    finally:
        if paused:
            consumer.resume(consumer.assignment())


def _idle(consumer: Consumer, seconds: float, stop: threading.Event) -> bool:
    """Poll a paused consumer for `seconds` (keeps group membership); True if stopped.

    A message can still arrive (prefetched, or from a partition assigned during the
    pause): it is not processed now; seeking back makes it come again after the resume.
    """
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        message = consumer.poll(min(remaining, 0.5))
        if message is not None and message.error() is None:
            tp = TopicPartition(*position(message))
            consumer.seek(tp)
            consumer.pause([tp])
    return True


def _publish(
    producer: Producer,
    settings: Settings,
    outcome: BatchOutcome,
    dead: list[DeadLetter],
    metrics: SinkMetrics,
) -> None:
    """Produce room clashes and dead letters; confirmed before any offset moves past them."""
    if not outcome.executions and not dead:
        return
    for execution in outcome.executions:
        producer.produce(
            settings.topic(topics.EXECUTIONS),
            key=execution.item_key.encode(),
            value=codec.encode(execution),
        )
    for letter in dead:
        producer.produce(
            settings.topic(topics.DLQ),
            key=letter.key,
            value=letter.value,
            headers=list(letter.headers()),
        )
        metrics.dlq.labels(PROCESS, letter.reason).inc()
        logger.warning(
            "dead letter topic=%s partition=%s offset=%s reason=%s",
            letter.source_topic,
            letter.source_partition,
            letter.source_offset,
            letter.reason,
        )
    kafka_clients.flush_or_raise(producer)


def _commit(consumer: Consumer, messages: list[Message]) -> None:
    next_offsets: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = position(message)
        key = (topic, partition)
        next_offsets[key] = max(next_offsets.get(key, 0), offset + 1)
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
            asynchronous=False,
        )
    except KafkaException as exc:
        # Lost the partitions in a rebalance (e.g. during a long outage): the new owner
        # re-reads from the last commit, and rewriting is harmless.
        logger.warning("offset commit failed, batch will be redelivered: %s", exc)


def _observe(
    outcome: BatchOutcome, actions: list[Action], now: datetime, metrics: SinkMetrics
) -> None:
    for (kind, result), count in outcome.writes.items():
        metrics.writes.labels(SINK, kind, result).inc(count)
    for action in actions:
        if not (isinstance(action.payload, PlanActivity) and action.payload.add_to_calendar):
            continue
        # A timer's latency starts at its due time, not at the event months before.
        start = action.due_at if action.mode == ActionMode.DELAYED and action.due_at else None
        start = start or action.occurred_at
        metrics.end_to_end.labels(SINK, action.mode.value).observe(
            max(0.0, (now - start).total_seconds())
        )
