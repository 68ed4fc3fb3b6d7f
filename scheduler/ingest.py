"""Ingest: timer commands from Kafka into Postgres, one transaction per batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import psycopg

from automation_core.model import Execution, ExecutionStatus
from runtime import codec, offsets
from runtime.clock import Clock
from runtime.consume import Batch, DeadLetters
from runtime.retry import RETRYABLE
from scheduler import timer_batch, timer_store
from scheduler.metrics import SchedulerMetrics
from scheduler.publisher import Outgoing, Publisher
from scheduler.timer_batch import TimerBatch, TimerEntry

logger = logging.getLogger(__name__)

GROUP = "crm-automation-scheduler"


class Ingest:
    """The scheduler's step on the consume loop: stores schedules, applies cancels and
    stores the offsets in one transaction.

    Exactly-once without Kafka transactions: the consumer seeks to the offsets stored
    with the timers, and a replayed schedule inserts nothing (its id is the action id).
    `cancelled` executions are confirmed before the commit.
    """

    retryable = RETRYABLE

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        publisher: Publisher,
        clock: Clock,
        metrics: SchedulerMetrics,
        *,
        executions_topic: str,
        on_due: Callable[[datetime | None], None] = lambda _due: None,
        group: str = GROUP,
    ) -> None:
        self._group = group
        self._connect = connect
        self._conn = connect()
        self._publisher = publisher
        self._clock = clock
        self._metrics = metrics
        self._executions_topic = executions_topic
        self._on_due = on_due

    @property
    def group(self) -> str:
        """The consumer group whose offsets are stored with the timers."""
        return self._group

    def stored_offsets(self) -> dict[tuple[str, int], int]:
        return offsets.stored_offsets(self._conn, self._group)

    def decode(self, value: bytes) -> TimerEntry:
        return timer_batch.decode(value)

    def process(self, batch: Batch[TimerEntry], _dead_letters: DeadLetters) -> None:
        if self._conn.broken or self._conn.closed:
            self._conn = self._connect()
        self.write(TimerBatch.sorted(batch))

    def write(self, batch: TimerBatch) -> timer_store.IngestResult:
        """One transaction: schedules, cancels, their executions confirmed, offsets."""
        started = time.perf_counter()
        now = self._clock.now()
        with self._conn.transaction(), self._conn.cursor() as cur:
            result = timer_store.ingest(
                cur, batch.schedules, batch.entry_cancels, batch.rule_cancels, now
            )
            if result.cancelled:
                self._publisher.publish(self._cancelled_records(result.cancelled, now))
            offsets.store_offsets(cur, self._group, batch.next_offsets)
        self._on_due(result.earliest_due)
        self._metrics.batch_seconds.labels("ingest").observe(time.perf_counter() - started)
        self._metrics.scheduled.inc(result.scheduled)
        for ref in result.cancelled:
            self._metrics.cancelled.labels(ref.reason or "unknown").inc()
        logger.debug(
            "ingested schedules=%d entry_cancels=%d rule_cancels=%d scheduled=%d cancelled=%d",
            len(batch.schedules),
            len(batch.entry_cancels),
            len(batch.rule_cancels),
            result.scheduled,
            len(result.cancelled),
        )
        return result

    def _cancelled_records(
        self, cancelled: Sequence[timer_store.TimerRef], now: datetime
    ) -> list[Outgoing]:
        return [
            Outgoing(
                self._executions_topic,
                ref.item_key.encode(),
                codec.encode(
                    Execution(
                        rule_id=ref.rule_id,
                        item_key=ref.item_key,
                        event_id=ref.event_id,
                        status=ExecutionStatus.CANCELLED,
                        recorded_at=now,
                        action_id=ref.timer_id,
                        rule_version=ref.rule_version,
                        due_at=ref.due_at,
                        reason=ref.reason,
                    )
                ),
            )
            for ref in cancelled
        ]

    def close(self) -> None:
        self._conn.close()
