"""`crm-automation sink postgres`: actions and executions into Postgres, exactly once."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from confluent_kafka import KafkaException, Message, Producer

from automation_core.model import Action, Execution
from runtime import codec, kafka_clients, offsets, topics
from runtime.consume import BatchConsumer
from runtime.dlq import DeadLetter, dead_letter_of, position
from runtime.health import Readiness
from runtime.kafka_clients import ProducerRecord
from runtime.settings import Settings
from sinks.metrics import SinkMetrics
from sinks.postgres import store as postgres
from sinks.postgres.rows import ACTIVITY_COLUMNS, DEAL_COLUMNS, LEAD_COLUMNS, Rows

logger = logging.getLogger(__name__)

GROUP = "crm-automation-sink-postgres"
SINK = "postgres"
_FIRST_BACKOFF = 0.2
_MAX_BACKOFF = 30.0
_CONNECT_TIMEOUT = 10
_RELAY_INTERVAL = 1.0


def run(
    settings: Settings,
    metrics: SinkMetrics,
    stop: threading.Event,
    readiness: Readiness | None = None,
) -> None:
    """Consume until `stop` is set; each batch is one transaction with its offsets.

    One batch is in flight at a time: while the writer thread writes it, this thread
    polls and decodes the next. Batches commit in order, each with its own offsets, so a
    batch left unwritten (a stop during an outage) leaves every later one unwritten too.
    """
    if settings.database_url is None:
        raise RuntimeError("no database configured: set CRM_AUTOMATION_DATABASE_URL")
    database_url = settings.database_url.get_secret_value()
    sources = [settings.topic(topics.ACTIONS), settings.topic(topics.EXECUTIONS)]
    group = settings.group(GROUP)
    consumer = BatchConsumer(
        kafka_clients.consumer_config(settings, group),
        sources,
        lambda: _load_offsets(database_url, group, stop, metrics),
    )
    relay = _OutboxRelay(database_url, Producer(kafka_clients.producer_config(settings)), stop)
    sink = _Sink(
        settings, consumer, BatchWriter(database_url, metrics, stop, group), relay, metrics
    )
    logger.info("postgres sink started group=%s topics=%s", group, sources)
    relay.start()
    try:
        while not stop.is_set():
            messages = consumer.poll_batch(settings.batch_size, timeout=0.2)
            if readiness is not None:
                readiness.ready()
            decoded = sink.decode(messages) if messages else None
            if not sink.finish():
                break  # stopped mid-outage: nothing committed past the unwritten batch
            if decoded is not None:
                sink.start(decoded)
        sink.finish()
    finally:
        sink.close()


class _Sink:
    """The consuming side: decodes batches, hands them to the writer, acts on the result."""

    def __init__(
        self,
        settings: Settings,
        consumer: BatchConsumer,
        writer: BatchWriter,
        relay: _OutboxRelay,
        metrics: SinkMetrics,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._writer = writer
        self._relay = relay
        self._metrics = metrics
        self._producer = Producer(kafka_clients.producer_config(settings))
        self._announce_topic = settings.topic(topics.STAGE_CHANGES)
        self._in_flight: list[Message] = []

    def decode(self, messages: list[Message]) -> _Decoded:
        """Decode `messages` into rows; the invalid ones go to the DLQ (confirmed) now."""
        rows, next_offsets, dead = self._decode(messages)
        if dead:
            _send_dead_letters(self._producer, self._settings, dead, self._metrics)
        return _Decoded(messages, rows, next_offsets)

    def start(self, decoded: _Decoded) -> None:
        """Start writing a decoded batch (after `finish` of the one before)."""
        self._in_flight = decoded.messages
        self._writer.start(decoded.rows, decoded.next_offsets)

    def finish(self) -> bool:
        """Wait for the batch in flight; False if it was left unwritten because of a stop."""
        outcome = self._writer.finish()
        if isinstance(outcome, Rejected):
            outcome = self._write_one_by_one(outcome)
        if outcome is None:
            return True
        if outcome is UNWRITTEN:
            return False
        rows, next_offsets = outcome
        self._consumer.commit_for_lag(next_offsets)
        _observe(rows, self._metrics)
        if rows.outbox:
            self._relay.wake()
        return True

    def close(self) -> None:
        self._writer.close()
        self._relay.close()
        self._consumer.close()
        self._producer.flush(10)

    def _write_one_by_one(self, rejected: Rejected) -> Batch | None:
        """The database refused the batch for good: write it message by message, and
        dead-letter each message it refuses (decoding failures were dead-lettered already)."""
        logger.warning(
            "postgres refused a batch, writing it message by message: %s",
            type(rejected.error).__name__,
        )
        batch, last_offsets = Rows(), {}
        for message in self._in_flight:
            rows, next_offsets, _dead = self._decode([message])
            last_offsets.update(next_offsets)
            self._writer.start(rows, next_offsets)
            outcome = self._writer.finish()
            if isinstance(outcome, Rejected):
                error = outcome.error
                letter = dead_letter_of(message, type(error).__name__, "rejected", str(error))
                _send_dead_letters(self._producer, self._settings, [letter], self._metrics)
                self._writer.start(Rows(), next_offsets)  # only the offset moves past it
                outcome = self._writer.finish()
            if outcome is UNWRITTEN or isinstance(outcome, Rejected):
                return UNWRITTEN
            if outcome is not None:
                batch.extend_rows(outcome[0])
        self._in_flight = []
        return batch, last_offsets

    def _decode(
        self, messages: list[Message]
    ) -> tuple[Rows, dict[tuple[str, int], int], list[DeadLetter]]:
        rows, next_offsets, dead = Rows(announce_topic=self._announce_topic), {}, []
        for message in messages:
            topic, partition, offset = position(message)
            next_offsets[(topic, partition)] = offset + 1
            value = message.value()
            try:
                if not isinstance(value, bytes):
                    raise codec.InvalidMessage("null_value", "record without a value")
                record = codec.decode(value)
            except codec.InvalidMessage as exc:
                dead.append(dead_letter_of(message, "InvalidMessage", exc.reason, str(exc)))
                continue
            if isinstance(record, Action):
                rows.add_action(record)
            elif isinstance(record, Execution):
                rows.add_execution(record)
            else:
                dead.append(
                    dead_letter_of(
                        message, "InvalidMessage", "unexpected_record", type(record).__name__
                    )
                )
        return rows, next_offsets, dead


@dataclass(frozen=True)
class _Decoded:
    messages: list[Message]
    rows: Rows
    next_offsets: dict[tuple[str, int], int]


Batch = tuple[Rows, dict[tuple[str, int], int]]
UNWRITTEN: Batch = (Rows(), {})
"""What `BatchWriter.finish` returns for a batch a stop left unwritten."""


@dataclass(frozen=True)
class Rejected:
    """The database refused the batch for good (bad data, a violated constraint)."""

    error: psycopg.Error


# Errors of the data, not of the connection: retrying the same rows cannot succeed.
_PERMANENT = (psycopg.DataError, psycopg.IntegrityError)


class BatchWriter:
    """Writes one batch at a time on its own thread and connection, retrying outages."""

    def __init__(
        self, database_url: str, metrics: SinkMetrics, stop: threading.Event, group: str = GROUP
    ) -> None:
        self._url = database_url
        self._group = group
        self._metrics = metrics
        self._stop = stop
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sink-postgres-writer")
        self._pending: Future[Batch | Rejected] | None = None
        self._conn: psycopg.Connection | None = None
        self._closed = threading.Event()

    def start(self, rows: Rows, next_offsets: dict[tuple[str, int], int]) -> None:
        assert self._pending is None, "finish() the batch in flight first"  # noqa: S101
        self._pending = self._pool.submit(self._write, rows, next_offsets)

    def finish(self) -> Batch | Rejected | None:
        """The batch in flight once written (`UNWRITTEN` if stopped first); None: none."""
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def close(self) -> None:
        self._closed.set()  # a batch still retrying gives up after its current backoff
        self._pool.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()

    def _write(self, rows: Rows, next_offsets: dict[tuple[str, int], int]) -> Batch | Rejected:
        """Retry an outage with capped backoff on a new connection; the batch stays whole."""
        backoff = _FIRST_BACKOFF
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._url, connect_timeout=_CONNECT_TIMEOUT)
                with self._metrics.batch_seconds.labels(SINK).time():
                    postgres.write_batch(self._conn, rows, self._group, next_offsets)
                return rows, next_offsets
            except _PERMANENT as exc:
                return Rejected(exc)
            except psycopg.OperationalError as exc:
                self._metrics.retries.labels(SINK).inc()
                logger.warning("postgres write failed, retrying in %.1fs: %s", backoff, exc)
                if self._conn is not None:
                    self._conn.close()
                if self._stop.wait(backoff) or self._closed.is_set():
                    return UNWRITTEN
                backoff = min(backoff * 2, _MAX_BACKOFF)


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


def _load_offsets(
    database_url: str, group: str, stop: threading.Event, metrics: SinkMetrics
) -> dict[tuple[str, int], int]:
    """The stored offsets, on a connection of its own (called at every assignment)."""
    backoff = _FIRST_BACKOFF
    while True:
        try:
            with psycopg.connect(database_url, connect_timeout=_CONNECT_TIMEOUT) as conn:
                return offsets.stored_offsets(conn, group)
        except psycopg.OperationalError as exc:
            metrics.retries.labels(SINK).inc()
            logger.warning("reading stored offsets failed, retrying in %.1fs: %s", backoff, exc)
            if stop.wait(backoff):
                raise
            backoff = min(backoff * 2, _MAX_BACKOFF)


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


def _send_dead_letters(
    producer: Producer, settings: Settings, dead: list[DeadLetter], metrics: SinkMetrics
) -> None:
    """Produce and confirm the DLQ records before the offsets that skip them are stored."""
    for letter in dead:
        metrics.dlq.labels("sink_postgres", letter.reason).inc()
        logger.warning(
            "dead letter topic=%s partition=%s offset=%s reason=%s",
            letter.source_topic,
            letter.source_partition,
            letter.source_offset,
            letter.reason,
        )
    kafka_clients.produce_and_confirm(
        producer,
        settings.topic(topics.DLQ),
        [ProducerRecord(d.key, d.value, d.headers()) for d in dead],
    )
