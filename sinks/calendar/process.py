"""`crm-automation sink calendar`: planned activities into CalDAV calendars.

A step on the runtime's consume loop (`runtime.consume`): offsets are committed to Kafka
only after the batch's calendar writes, its executions and its dead letters are
confirmed; a redelivered batch is harmless (every write is idempotent). During an outage
the loop pauses the partitions and retries the batch with backoff.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from confluent_kafka import Producer

from automation_core.model import Action, ActionMode, PlanActivity
from runtime import codec, kafka_clients, topics
from runtime.clock import Clock, SystemClock
from runtime.consume import Batch, DeadLetters, decode_as
from runtime.dlq import STAGE_TASK_PUT, dead_letter_of
from runtime.health import Readiness
from runtime.kafka_clients import Outgoing
from runtime.settings import Settings
from sinks.calendar.caldav_client import CalDAVClient, CalDAVUnavailable
from sinks.calendar.events import Addressing
from sinks.calendar.store import PostgresEventLog, StoreUnavailable
from sinks.calendar.writer import BatchOutcome, CalendarWriter
from sinks.loop import sink_loop
from sinks.metrics import SinkMetrics

logger = logging.getLogger(__name__)

GROUP = "crm-automation-sink-calendar"
SINK = "calendar"


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
    producer = Producer(kafka_clients.producer_config(settings))
    step = CalendarStep(writer, producer, settings.topic(topics.EXECUTIONS), clock, metrics)
    loop = sink_loop(
        step, settings, metrics, stop, producer, sink=SINK, group=group, readiness=readiness
    )
    logger.info("calendar sink started group=%s", group)
    try:
        loop.run()
    finally:
        producer.flush(10)


class CalendarStep:
    """Writes a batch's activities; room clashes become executions, refusals dead letters."""

    retryable: tuple[type[BaseException], ...] = (CalDAVUnavailable, StoreUnavailable)

    def __init__(
        self,
        writer: CalendarWriter,
        producer: Producer,
        executions_topic: str,
        clock: Clock,
        metrics: SinkMetrics,
    ) -> None:
        self._writer = writer
        self._producer = producer
        self._executions_topic = executions_topic
        self._clock = clock
        self._metrics = metrics

    def close(self) -> None:
        self._writer.close()

    def decode(self, value: bytes) -> Action:
        action: Action = _decode_action(value)
        return action

    def process(self, batch: Batch[Action], dead_letters: DeadLetters) -> None:
        with self._metrics.batch_seconds.labels(SINK).time():
            outcome = self._writer.write(batch.records)
        if outcome.executions:  # room clashes, confirmed before the offsets move past them
            kafka_clients.produce_and_confirm(
                self._producer,
                [
                    Outgoing(self._executions_topic, e.item_key.encode(), codec.encode(e))
                    for e in outcome.executions
                ],
            )
        dead_letters.send(
            [
                dead_letter_of(
                    batch.messages[index],
                    "CalDAVRejected",
                    error.reason,
                    str(error),
                    stage=STAGE_TASK_PUT,
                    executing_class="sinks.calendar.writer.CalendarWriter",
                )
                for index, error in outcome.rejected.items()
            ]
        )
        _observe(outcome, batch.records, self._clock.now(), self._metrics)


_decode_action = decode_as(Action)


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
