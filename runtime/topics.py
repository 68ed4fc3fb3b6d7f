"""The contract topics and their idempotent creation."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import admin as kafka_admin
from confluent_kafka.admin import AdminClient

from runtime import kafka_clients
from runtime.settings import Settings

logger = logging.getLogger(__name__)

STAGE_CHANGES = "crm.stage-changes"
RULES = "automation.rules"
TIMERS = "automation.timers"
ACTIONS = "automation.actions"
EXECUTIONS = "automation.executions"
DLQ = "automation.dlq"

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every contract topic with its configuration (names carry the configured prefix)."""
    retention = str(settings.topic_retention_days * _DAY_MS)
    n = settings.partitions
    return [
        TopicSpec(settings.topic(STAGE_CHANGES), n, {"retention.ms": retention}),
        # Rules are state: compacted and kept forever; one partition keeps apply order.
        TopicSpec(settings.topic(RULES), 1, {"cleanup.policy": "compact", "retention.ms": "-1"}),
        # Timers can be due half a year out: keep commands longer than the longest delay.
        TopicSpec(
            settings.topic(TIMERS),
            n,
            {"retention.ms": str(settings.timers_retention_days * _DAY_MS)},
        ),
        TopicSpec(settings.topic(ACTIONS), n, {"retention.ms": retention}),
        TopicSpec(settings.topic(EXECUTIONS), n, {"retention.ms": retention}),
        TopicSpec(settings.topic(DLQ), n, {"retention.ms": retention}),
    ]


def create_topics(admin: AdminClient, settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the contract topics that do not exist yet; return the names created now."""
    specs = topic_specs(settings)
    futures = admin.create_topics(
        [
            kafka_admin.NewTopic(  # type: ignore[attr-defined]
                s.name,
                num_partitions=s.partitions,
                replication_factor=settings.replication_factor,
                config=s.config,
            )
            for s in specs
        ],
        request_timeout=timeout,
    )
    kafka_clients.await_admin(admin, futures.values(), timeout)  # refused credentials raise
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            logger.debug("topic exists topic=%s", name)
        else:
            logger.info("created topic topic=%s", name)
            created.append(name)
    _wait_for_leaders(admin, created, timeout)
    return created


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """A topic just created has no partition leader for a moment: wait until all have one."""
    deadline = time.monotonic() + timeout
    while names:
        metadata = admin.list_topics(timeout=timeout).topics
        if all(
            n in metadata
            and metadata[n].partitions
            and all(p.leader >= 0 for p in metadata[n].partitions.values())
            for n in names
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout}s: {names}")
        time.sleep(0.1)
