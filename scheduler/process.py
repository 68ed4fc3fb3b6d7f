"""Wiring of `crm-automation scheduler`: the ingest loop and the fire loop, one process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

import psycopg
from confluent_kafka import Producer

from runtime import kafka_clients, topics
from runtime.clock import Clock, SystemClock
from runtime.consume import ConsumeLoop, DeadLetters, PostgresOffsets
from runtime.health import Readiness
from runtime.settings import Settings
from scheduler.fire import FireLoop
from scheduler.ingest import GROUP, Ingest
from scheduler.metrics import SchedulerMetrics
from scheduler.publisher import KafkaPublisher
from scheduler.timer_batch import TimerEntry

logger = logging.getLogger(__name__)


def run(
    settings: Settings,
    metrics: SchedulerMetrics,
    stop: threading.Event,
    clock: Clock | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Ingest on this thread and fire on another until `stop` is set or one loop fails."""
    clock = clock or SystemClock()
    if not settings.database_url:
        raise RuntimeError("no database configured: set CRM_AUTOMATION_DATABASE_URL")
    database_url = settings.database_url.get_secret_value()

    def connect() -> psycopg.Connection:
        return psycopg.connect(database_url, autocommit=True)

    # One producer per loop: a flush waits only for that loop's own records.
    fire_publisher = KafkaPublisher(Producer(kafka_clients.producer_config(settings)))
    ingest_producer = Producer(kafka_clients.producer_config(settings))
    fire = FireLoop(
        connect,
        fire_publisher,
        clock,
        metrics,
        actions_topic=settings.topic(topics.ACTIONS),
        executions_topic=settings.topic(topics.EXECUTIONS),
        batch_size=settings.scheduler_fire_batch_size,
        poll_seconds=settings.scheduler_poll_seconds,
    )
    group = settings.group(GROUP)
    ingest = Ingest(
        connect,
        KafkaPublisher(ingest_producer),
        clock,
        metrics,
        executions_topic=settings.topic(topics.EXECUTIONS),
        on_due=fire.notify_due,
        group=group,
    )
    loop = ingest_loop(ingest, settings, database_url, metrics, stop, ingest_producer)
    failure: list[BaseException] = []
    fire_thread = threading.Thread(
        target=_guarded, args=(partial(fire.run, stop), stop, failure), name="scheduler-fire"
    )
    logger.info("scheduler started group=%s", settings.group(GROUP))
    fire_thread.start()
    if readiness is not None:
        readiness.ready()  # both loops running; Kafka and Postgres are checked separately
    try:
        _guarded(loop.run, stop, failure)
    finally:
        stop.set()
        fire.interrupt()
        fire_thread.join()
        fire_publisher.close()
        ingest_producer.flush(10)
        fire.close()
        logger.info("scheduler stopped")
    if failure:
        raise RuntimeError("scheduler loop failed") from failure[0]


def ingest_loop(
    ingest: Ingest,
    settings: Settings,
    database_url: str,
    metrics: SchedulerMetrics,
    stop: threading.Event,
    producer: Producer,
) -> ConsumeLoop[TimerEntry]:
    """The consume loop of `ingest` over `automation.timers`, in its group, its offsets in
    Postgres.

    With `overlap`, the next batch is polled and decoded while the last one is written:
    decoding was about as long as the write, and the two no longer wait for each other.
    """
    on_retry = metrics.retries.labels("ingest").inc
    group = ingest.group
    return ConsumeLoop(
        ingest,
        consumer_config=kafka_clients.consumer_config(settings, group),
        topics=[settings.topic(topics.TIMERS)],
        offsets=PostgresOffsets(database_url, group, stop, on_retry),
        dead_letters=DeadLetters(
            producer,
            settings.topic(topics.DLQ),
            lambda reason: metrics.dlq.labels("scheduler", reason).inc(),
            process="scheduler",
        ),
        stop=stop,
        batch_size=settings.batch_size,
        on_retry=on_retry,
        name="ingest",
        overlap=True,
    )


def _guarded(loop: Callable[[], None], stop: threading.Event, failure: list[BaseException]) -> None:
    """Run a loop; its failure stops the other loop and is re-raised by `run`."""
    try:
        loop()
    except BaseException as exc:
        logger.exception("scheduler loop failed")
        failure.append(exc)
        stop.set()
