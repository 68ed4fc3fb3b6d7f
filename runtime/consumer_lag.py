"""Consumer lag per group and topic, refreshed in the background of every consuming process.

`crm_automation_consumer_lag{group, topic}`: messages between the group's committed
offset and the high watermark, summed over the topic's partitions (a partition the group
never committed counts from its low watermark). Read with a consumer of its own that
never joins the group, so it sees exactly what `kafka-consumer-groups --describe` sees.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from runtime import kafka_clients
from runtime.health import Readiness
from runtime.settings import Settings

logger = logging.getLogger(__name__)

_TIMEOUT = 5.0


def lag_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "crm_automation_consumer_lag",
        "Messages behind the high watermark, by consumer group and topic "
        "(summed over partitions, from the group's committed offsets).",
        ["group", "topic"],
        registry=registry,
    )


def committed_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "crm_automation_consumer_committed_offsets",
        "The group's committed offsets summed over the topic's partitions (a partition it "
        "never committed counts its low watermark): a value that stands still while the "
        "lag is above 0 means the group does not move.",
        ["group", "topic"],
        registry=registry,
    )


Reading = Callable[[int, int], None]
"""Receives each successful reading: lag and committed offsets, summed over every topic."""


def partition_lag(committed: int, low: int, high: int) -> int:
    """Messages a group still has to read in one partition (never committed: from `low`)."""
    start = committed if committed >= 0 else low
    return max(0, high - max(start, low))


class ConsumerLagMonitor:
    """A daemon thread setting the lag gauge every `interval` seconds until stopped.

    Each successful refresh also marks the readiness condition `kafka` met (the broker
    answers for this group); a failed one marks it unmet with the error's name.
    """

    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: Sequence[str],
        registry: CollectorRegistry,
        readiness: Readiness | None = None,
        on_reading: Reading = lambda _lag, _committed: None,
    ) -> None:
        self._settings = settings
        self._group = group
        self._topics = list(topics)
        self._gauge = lag_gauge(registry)
        self._committed = committed_gauge(registry)
        self._on_reading = on_reading
        self._readiness = readiness
        self._interval = settings.consumer_lag_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer-lag", daemon=True)
        if readiness is not None:
            readiness.require("kafka", "consumer lag not read yet")

    def start(self) -> ConsumerLagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_TIMEOUT * 2)

    def _run(self) -> None:
        config: dict[str, Any] = kafka_clients.consumer_config(
            self._settings, self._group, **{"client.id": f"{self._group}-lag-monitor"}
        )
        consumer = Consumer(config)
        try:
            while not self._stop.is_set():
                # After a failure (e.g. the group's coordinator not known yet) retry soon.
                fresh = self.refresh(consumer)
                self._stop.wait(self._interval if fresh else min(self._interval, 1.0))
        finally:
            try:
                consumer.close()
            except (KafkaException, kafka_clients.KafkaAuthenticationFailed) as exc:
                logger.debug("lag monitor close failed: %s", exc)

    def refresh(self, consumer: Consumer) -> bool:
        """Set the gauge from one reading; False if Kafka did not answer."""
        try:
            lags = self._read(consumer)
        except (KafkaException, kafka_clients.KafkaAuthenticationFailed) as exc:
            error = exc.args[0] if exc.args else exc
            logger.warning("consumer lag not read group=%s error=%s", self._group, error)
            if self._readiness is not None:
                self._readiness.not_ready("kafka", f"broker did not answer ({error})")
            return False
        for topic, (lag, committed) in lags.items():
            self._gauge.labels(self._group, topic).set(lag)
            self._committed.labels(self._group, topic).set(committed)
        if self._readiness is not None:
            self._readiness.ready("kafka")
        self._on_reading(sum(v[0] for v in lags.values()), sum(v[1] for v in lags.values()))
        return True

    def _read(self, consumer: Consumer) -> dict[str, tuple[int, int]]:
        """(lag, committed offsets) per topic, summed over its partitions."""
        # Metadata of our topics only: a whole-cluster listing cost ~5 % of the engine's
        # samples on a broker with many topics (bench/engine_bench.py --profile).
        metadata = {
            topic: consumer.list_topics(topic, timeout=_TIMEOUT).topics.get(topic)
            for topic in self._topics
        }
        partitions = [
            TopicPartition(topic, p)
            for topic in self._topics
            if (meta := metadata[topic]) is not None and meta.error is None
            for p in meta.partitions
        ]
        lags = dict.fromkeys(self._topics, (0, 0))
        for tp in consumer.committed(partitions, timeout=_TIMEOUT) if partitions else []:
            low, high = consumer.get_watermark_offsets(tp, timeout=_TIMEOUT, cached=False)
            lag, committed = lags[tp.topic]
            position = tp.offset if tp.offset >= 0 else low
            lags[tp.topic] = (lag + partition_lag(tp.offset, low, high), committed + position)
        return lags
