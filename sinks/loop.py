"""A sink's consume loop: the runtime's loop with the sinks' metrics and dead letters."""

from __future__ import annotations

import threading

from confluent_kafka import Producer

from runtime import kafka_clients, topics
from runtime.consume import ConsumeLoop, DeadLetters, KafkaOffsets, OffsetStore, R, Step
from runtime.health import Readiness
from runtime.settings import Settings
from sinks.metrics import SinkMetrics


def sink_loop(
    step: Step[R],
    settings: Settings,
    metrics: SinkMetrics,
    stop: threading.Event,
    producer: Producer,
    *,
    sink: str,
    group: str,
    sources: list[str] | None = None,
    offsets: OffsetStore | None = None,
    readiness: Readiness | None = None,
    overlap: bool = False,
) -> ConsumeLoop[R]:
    """The loop of sink `sink` (postgres, calendar, webhook) over `sources` (default
    `automation.actions`), its offsets in Kafka unless `offsets` says otherwise; dead
    letters go out through `producer`, counted as `sink_<sink>`."""
    return ConsumeLoop(
        step,
        consumer_config=kafka_clients.consumer_config(settings, group),
        topics=sources or [settings.topic(topics.ACTIONS)],
        offsets=offsets or KafkaOffsets(),
        dead_letters=DeadLetters(
            producer,
            settings.topic(topics.DLQ),
            lambda reason: metrics.dlq.labels(f"sink_{sink}", reason).inc(),
            process=f"sink-{sink}",
        ),
        stop=stop,
        batch_size=settings.batch_size,
        on_retry=metrics.retries.labels(sink).inc,
        name=sink,
        readiness=readiness,
        overlap=overlap,
    )
