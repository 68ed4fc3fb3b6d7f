"""The fire loop: claim due timers in due order, produce their actions, mark them fired."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

import psycopg

from runtime import codec
from runtime.clock import Clock
from runtime.retry import RETRYABLE, Backoff
from scheduler import timer_store
from scheduler.metrics import SchedulerMetrics
from scheduler.publisher import Outgoing, Publisher

logger = logging.getLogger(__name__)

# Counting pending timers scans the partial index (a second or more with millions
# pending): every 10 s, on a thread and connection of its own, never on the fire loop's.
_PENDING_REFRESH_SECONDS = 10.0


class FireLoop:
    """Fires due timers; several loops (threads or processes) may share one database.

    Each batch is one transaction: claim and mark fired in one statement (`FOR UPDATE
    SKIP LOCKED`, so another loop skips these rows), produce and confirm the actions and
    `fired` executions, commit. `connect` gives autocommit connections (each batch opens
    its own transaction). A crash or a refused delivery before the commit rolls the mark
    back: the timers stay pending and fire again (the sinks deduplicate by action id); a
    timer is never committed as fired unless delivered.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        publisher: Publisher,
        clock: Clock,
        metrics: SchedulerMetrics,
        *,
        actions_topic: str,
        executions_topic: str,
        batch_size: int = 1000,
        max_batch_size: int | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self._connect = connect
        self._conn = connect()
        self._publisher = publisher
        self._clock = clock
        self._metrics = metrics
        self._actions_topic = actions_topic
        self._executions_topic = executions_topic
        self._batch_size = batch_size
        # Under a backlog each full batch doubles the next, up to this: fewer claims,
        # confirmations and commits per timer while a burst drains.
        self._max_batch_size = max_batch_size or 8 * batch_size
        self._limit = batch_size
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._planned_wake: datetime | None = None
        self._pending_refreshed = 0.0
        self._counter = ThreadPoolExecutor(1, thread_name_prefix="scheduler-pending")
        self._counting: Future[None] | None = None
        self._count_conn: psycopg.Connection | None = None

    def notify_due(self, due_at: datetime | None) -> None:
        """Ingest stored a timer due at `due_at`: wake now if it is due before the plan."""
        if due_at is None:
            return
        planned = self._planned_wake
        if planned is None or due_at < planned:
            self._wake.set()

    def interrupt(self) -> None:
        """Cut the current wait short (after setting the `stop` given to `run`)."""
        self._wake.set()

    def fire_once(self) -> int:
        """Fire at most one batch of due timers; return how many fired."""
        started = time.perf_counter()
        now = self._clock.now()
        with self._conn.transaction(), self._conn.cursor() as cur:
            due = timer_store.claim_and_mark_due(cur, now, self._limit)
            if not due:
                return 0
            self._publish(due, now)
            produced_at = self._clock.now()
        self._metrics.batch_seconds.labels("fire").observe(time.perf_counter() - started)
        self._metrics.fired.inc(len(due))
        for timer in due:
            self._metrics.firing_lag.observe(max(0.0, (produced_at - timer.due_at).total_seconds()))
        logger.info("fired timers=%d oldest_due=%s", len(due), due[0].due_at.isoformat())
        return len(due)

    def _publish(self, due: list[timer_store.DueTimer], now: datetime) -> None:
        """Produce and confirm the batch's records (inside its transaction)."""
        self._publisher.publish(self._records(due, now))

    def _records(self, due: list[timer_store.DueTimer], now: datetime) -> Iterator[Outgoing]:
        """The batch's actions, then its `fired` executions: produced as they are read,
        so librdkafka sends the stored actions while the executions are still being
        encoded."""
        keys = [t.item_key.encode() for t in due]
        for t, key in zip(due, keys, strict=True):
            yield Outgoing(self._actions_topic, key, t.action)
        for t, key in zip(due, keys, strict=True):
            lag_ms = max(0, round((now - t.due_at).total_seconds() * 1000))
            execution = codec.encode_fired(
                rule_id=t.rule_id,
                item_key=t.item_key,
                event_id=t.event_id,
                recorded_at=now,
                action_id=t.timer_id,
                rule_version=t.rule_version,
                due_at=t.due_at,
                reason=f"timer fired lag_ms={lag_ms}",
            )
            yield Outgoing(self._executions_topic, key, execution)

    def run(self, stop: threading.Event) -> None:
        """Fire until `stop` is set; outages are retried with backoff, batch by batch."""
        backoff = Backoff(stop)
        while not stop.is_set():
            self._wake.clear()
            self._planned_wake = None  # a timer ingested from now on wakes this loop
            try:
                if self._conn.broken or self._conn.closed:
                    self._conn = self._connect()
                fired = self.fire_once()
                if fired >= self._limit:  # a backlog: keep firing, oldest first
                    self._limit = min(2 * self._limit, self._max_batch_size)
                    continue
                self._limit = self._batch_size
                self._refresh_pending()
                wait = self._wait_seconds(timer_store.next_due(self._conn))
            except RETRYABLE as exc:
                self._metrics.retries.labels("fire").inc()
                logger.warning("fire batch failed, retrying in %.1fs: %s", backoff.delay, exc)
                backoff.wait()
                continue
            backoff.reset()
            if wait > 0:
                self._clock.wait(wait, self._wake)

    def _wait_seconds(self, next_due: datetime | None) -> float:
        now = self._clock.now()
        wait = self._poll_seconds
        if next_due is not None:
            wait = min(wait, max(0.0, (next_due - now).total_seconds()))
        self._planned_wake = now + timedelta(seconds=wait)
        return wait

    def _refresh_pending(self) -> None:
        """Start a count of the pending timers if the last is 10 s old and done."""
        if time.monotonic() - self._pending_refreshed < _PENDING_REFRESH_SECONDS:
            return
        if self._counting is not None and not self._counting.done():
            return
        self._pending_refreshed = time.monotonic()
        self._counting = self._counter.submit(self._count_pending)

    def _count_pending(self) -> None:
        try:
            if self._count_conn is None or self._count_conn.closed or self._count_conn.broken:
                self._count_conn = self._connect()
            self._metrics.pending.set(timer_store.pending_count(self._count_conn))
        except psycopg.Error as exc:  # the gauge waits for the next round; firing goes on
            logger.warning("counting pending timers failed: %s", type(exc).__name__)
            if self._count_conn is not None:
                self._count_conn.close()

    def close(self) -> None:
        self._counter.shutdown(wait=True)
        if self._count_conn is not None:
            self._count_conn.close()
        self._conn.close()
