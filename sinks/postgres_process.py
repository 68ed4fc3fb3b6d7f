"""`crm-automation sink postgres`: actions and executions into Postgres, exactly once."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import psycopg
from confluent_kafka import KafkaException, Producer

from automation_core.model import Action, Execution
from crm_automation import codec, kafka_clients, offsets, topics
from crm_automation.batch_consumer import BatchConsumer
from crm_automation.dlq import DeadLetter, dead_letter_of, position
from crm_automation.kafka_clients import ProducerRecord
from crm_automation.process import Readiness
from crm_automation.settings import Settings
from sinks import postgres
from sinks.metrics import SinkMetrics
from sinks.postgres_rows import Rows

logger = logging.getLogger(__name__)

GROUP = "crm-automation-sink-postgres"
SINK = "postgres"
_MAX_BACKOFF = 30.0


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
    conn = _connect(database_url, stop, metrics)
    sources = [settings.topic(topics.ACTIONS), settings.topic(topics.EXECUTIONS)]
    consumer = BatchConsumer(
        kafka_clients.consumer_config(settings, GROUP),
        sources,
        lambda: offsets.stored_offsets(conn, GROUP),
    )
    producer = Producer(kafka_clients.producer_config(settings))
    announce_topic = settings.topic(topics.STAGE_CHANGES)
    logger.info("postgres sink started group=%s topics=%s", GROUP, sources)
    try:
        while not stop.is_set():
            messages = consumer.poll_batch(settings.batch_size, timeout=0.2)
            if readiness is not None:
                readiness.ready()
            if not messages:
                _relay(conn, producer)
                continue
            rows, next_offsets, dead = Rows(announce_topic=announce_topic), {}, []
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
            if dead:
                _send_dead_letters(producer, settings, dead, metrics)
            conn = _write_with_retry(conn, database_url, rows, next_offsets, metrics, stop)
            consumer.commit_for_lag(next_offsets)
            _observe(rows, metrics)
            if rows.outbox:
                _relay(conn, producer)
    finally:
        consumer.close()
        producer.flush(10)
        conn.close()


def _relay(conn: psycopg.Connection, producer: Producer) -> None:
    """Relay committed announcements; on failure they stay pending for the next round."""
    try:
        postgres.relay_outbox(conn, producer)
    except (psycopg.Error, kafka_clients.DeliveryFailed, KafkaException) as exc:
        logger.warning("outbox relay failed, retrying later: %s", type(exc).__name__)


def _write_with_retry(
    conn: psycopg.Connection,
    database_url: str,
    rows: Rows,
    next_offsets: dict[tuple[str, int], int],
    metrics: SinkMetrics,
    stop: threading.Event,
) -> psycopg.Connection:
    """Retry an outage with capped backoff; nothing is committed past an unwritten row."""
    backoff = 0.2
    while True:
        try:
            with metrics.batch_seconds.labels(SINK).time():
                postgres.write_batch(conn, rows, GROUP, next_offsets)
            return conn
        except psycopg.OperationalError as exc:
            metrics.retries.labels(SINK).inc()
            logger.warning("postgres write failed, retrying in %.1fs: %s", backoff, exc)
            if stop.wait(backoff):
                raise
            backoff = min(backoff * 2, _MAX_BACKOFF)
            conn.close()
            conn = _connect(database_url, stop, metrics)


def _connect(database_url: str, stop: threading.Event, metrics: SinkMetrics) -> psycopg.Connection:
    backoff = 0.2
    while True:
        try:
            return psycopg.connect(database_url)
        except psycopg.OperationalError as exc:
            metrics.retries.labels(SINK).inc()
            logger.warning("postgres connect failed, retrying in %.1fs: %s", backoff, exc)
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
    for table in (rows.leads, rows.deals, rows.activities):
        for row in table:
            occurred_at = row[-1]
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
