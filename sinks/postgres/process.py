"""`crm-automation sink postgres`: actions and executions into Postgres, exactly once.

A step on the runtime's consume loop (`runtime.consume`) with offsets in Postgres: each
batch is one transaction with its offsets. While one batch is written, the loop polls
and decodes the next (`overlap`); batches commit in order, so a batch left unwritten (a
stop during an outage) leaves every later one unwritten too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from confluent_kafka import KafkaException, Producer

from automation_core.model import Action, Execution
from runtime import kafka_clients, topics
from runtime.consume import Batch, DeadLetters, PostgresOffsets, decode_as
from runtime.dlq import STAGE_TASK_PUT, dead_letter_of, position
from runtime.health import Readiness
from runtime.settings import Settings
from sinks.loop import sink_loop
from sinks.metrics import SinkMetrics
from sinks.postgres import store as postgres
from sinks.postgres.row_reader import RowReader
from sinks.postgres.rows import ACTIVITY_COLUMNS, DEAL_COLUMNS, LEAD_COLUMNS, ReadRows, Rows

logger = logging.getLogger(__name__)

GROUP = "crm-automation-sink-postgres"
SINK = "postgres"
_CONNECT_TIMEOUT = 10
_RELAY_INTERVAL = 1.0

Record = Action | Execution | ReadRows
"""A decoded record, or the row read straight from a message of a current schema."""


def run(
    settings: Settings,
    metrics: SinkMetrics,
    stop: threading.Event,
    readiness: Readiness | None = None,
) -> None:
    """Consume until `stop` is set; each batch is one transaction with its offsets."""
    if settings.database_url is None:
        raise RuntimeError("no database configured: set CRM_AUTOMATION_DATABASE_URL")
    database_url = settings.database_url.get_secret_value()
    sources = [settings.topic(topics.ACTIONS), settings.topic(topics.EXECUTIONS)]
    group = settings.group(GROUP)
    producer = Producer(kafka_clients.producer_config(settings))
    relay = _OutboxRelay(database_url, Producer(kafka_clients.producer_config(settings)), stop)
    step = PostgresStep(
        database_url, metrics, group, settings.topic(topics.STAGE_CHANGES), relay.wake
    )
    loop = sink_loop(
        step,
        settings,
        metrics,
        stop,
        producer,
        sink=SINK,
        group=group,
        sources=sources,
        offsets=PostgresOffsets(database_url, group, stop, metrics.retries.labels(SINK).inc),
        readiness=readiness,
        overlap=True,
    )
    logger.info("postgres sink started group=%s topics=%s", group, sources)
    relay.start()
    try:
        loop.run()
    finally:
        relay.close()
        producer.flush(10)


# Errors of the data, not of the connection: retrying the same rows cannot succeed.
_PERMANENT = (psycopg.DataError, psycopg.IntegrityError)


class PostgresStep:
    """Writes a batch's rows and offsets in one transaction on a connection of its own
    (replaced after an outage); a batch the database refuses for good is written record
    by record, and each record it refuses is dead-lettered (reason `rejected`)."""

    retryable: tuple[type[BaseException], ...] = (psycopg.OperationalError,)

    def __init__(
        self,
        database_url: str,
        metrics: SinkMetrics,
        group: str = GROUP,
        announce_topic: str | None = None,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._url = database_url
        self._metrics = metrics
        self._group = group
        self._announce_topic = announce_topic
        self._on_outbox = on_outbox
        self._conn: psycopg.Connection | None = None
        self._reader = RowReader()

    def decode(self, value: bytes) -> Record:
        read = self._reader.read(value)
        if read is not None:
            return read
        record: Record = _decode_record(value)  # also says why a record never decodes
        return record

    def process(self, batch: Batch[Record], dead_letters: DeadLetters) -> None:
        rows = self.rows(batch.records)
        try:
            self.write(rows, batch.next_offsets)
        except _PERMANENT as exc:
            logger.warning(
                "postgres refused a batch, writing it message by message: %s",
                type(exc).__name__,
            )
            rows = self._write_one_by_one(batch, dead_letters)
        _observe(rows, self._metrics)
        if rows.outbox:
            self._on_outbox()

    def rows(self, records: list[Record]) -> Rows:
        rows = Rows(announce_topic=self._announce_topic)
        for record in records:
            if isinstance(record, ReadRows):
                rows.add_read(record)
            elif isinstance(record, Action):
                rows.add_action(record)
            else:
                rows.add_execution(record)
        return rows

    def write(self, rows: Rows, next_offsets: dict[tuple[str, int], int]) -> None:
        """One transaction: the rows and the offsets (a lost connection is replaced on
        the next call)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, connect_timeout=_CONNECT_TIMEOUT)
            with self._metrics.batch_seconds.labels(SINK).time():
                postgres.write_batch(self._conn, rows, self._group, next_offsets)
        except psycopg.OperationalError:
            if self._conn is not None:
                self._conn.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _write_one_by_one(self, batch: Batch[Record], dead_letters: DeadLetters) -> Rows:
        written = Rows()
        for record, message in zip(batch.records, batch.messages, strict=True):
            topic, partition, offset = position(message)
            next_offsets = {(topic, partition): offset + 1}
            rows = self.rows([record])
            try:
                self.write(rows, next_offsets)
                written.extend_rows(rows)
            except _PERMANENT as exc:
                letter = dead_letter_of(
                    message,
                    type(exc).__name__,
                    "rejected",
                    str(exc),
                    stage=STAGE_TASK_PUT,
                    executing_class="sinks.postgres.process.PostgresStep",
                    error=exc,
                )
                dead_letters.send([letter])
                self.write(Rows(), next_offsets)  # only the offset moves past it
        self.write(Rows(), batch.next_offsets)  # past the batch's dead letters too
        return written


_decode_record = decode_as(Action, Execution)


class _OutboxRelay:
    """Relays committed announcements on its own thread: woken after a commit, else each
    second; on failure they stay pending for the next round."""

    def __init__(self, database_url: str, producer: Producer, stop: threading.Event) -> None:
        self._url = database_url
        self._producer = producer
        self._stop = stop
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sink-postgres-relay")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closed.set()  # also when the sink ends by an error, with `stop` unset
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self._producer.flush(10)

    def _loop(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while not (self._stop.is_set() or self._closed.is_set()):
                self._wake.wait(_RELAY_INTERVAL)
                self._wake.clear()
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self._url, connect_timeout=_CONNECT_TIMEOUT)
                    while postgres.relay_outbox(conn, self._producer) and not self._stop.is_set():
                        pass
                except (psycopg.Error, kafka_clients.DeliveryFailed, KafkaException) as exc:
                    logger.warning("outbox relay failed, retrying later: %s", type(exc).__name__)
                    if conn is not None:
                        conn.close()
        finally:
            if conn is not None:
                conn.close()


def _observe(rows: Rows, metrics: SinkMetrics) -> None:
    for kind, batch in (
        ("lead", rows.leads),
        ("deal", rows.deals),
        ("activity", rows.activities),
        ("completion", rows.completions),
        ("execution", rows.executions),
    ):
        if batch:
            metrics.writes.labels(SINK, kind, "ok").inc(len(batch))
    now = datetime.now(UTC)
    for table, columns in (
        (rows.leads, LEAD_COLUMNS),
        (rows.deals, DEAL_COLUMNS),
        (rows.activities, ACTIVITY_COLUMNS),
    ):
        at = columns.index("event_occurred_at")
        for row in table:
            occurred_at = row[at]
            if occurred_at is not None:
                metrics.end_to_end.labels(SINK, "immediate").observe(
                    max(0.0, (now - occurred_at).total_seconds())
                )
