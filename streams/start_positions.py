"""Partitions of the events topic that the group never committed are read from offset 0.

faust 0.15.3 seeks assigned partitions to their committed offsets (`Consumer.perform_seek`)
after every rebalance, and again whenever the fetcher returns records while the flow is
stopped (it drops those records and "seeks back to committed"). A partition with no
committed offset is not sought at all: aiokafka keeps its fetch position, which is past
the dropped records. Events produced while a worker starts (before its first commit,
~3 s) were lost that way, a few or a whole block per partition, despite
`auto_offset_reset=earliest`. Seeking such partitions to 0 after each of Faust's seeks
re-reads them; re-reading is safe because every effect is idempotent on `action_id`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from crm_automation.process import Readiness

logger = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF_SECONDS = 0.5


def read_never_committed_from_start(
    consumer: Any, topic: str, readiness: Readiness | None = None
) -> None:
    """Wrap `consumer.perform_seek` (once) so never-committed `topic` partitions start at 0."""
    if getattr(consumer, "_crm_start_positions", False):
        return
    faust_seek: Callable[[], Awaitable[None]] = consumer.perform_seek

    async def perform_seek() -> None:
        await faust_seek()
        stream_tps = [tp for tp in consumer.assignment() if tp.topic == topic]
        if stream_tps:
            committed = await _committed_offsets(consumer)
            if committed is None:
                if readiness is not None:
                    readiness.not_ready("consuming", "committed offsets unknown")
                return
            fresh = [tp for tp in stream_tps if committed.get(tp) is None]
            if fresh:
                logger.info("no committed offset: reading from the start partitions=%s", fresh)
                # Offset 0 past retention is out of range: auto_offset_reset=earliest applies.
                await consumer.seek_wait(dict.fromkeys(fresh, 0))
        if readiness is not None:
            readiness.ready()

    consumer.perform_seek = perform_seek
    consumer._crm_start_positions = True


async def _committed_offsets(consumer: Any) -> Mapping[Any, int | None] | None:
    """The group's committed offsets (seeking to them), retried: the coordinator may be
    unavailable for a moment while the broker or the group starts."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
            return committed
        except Exception as exc:  # noqa: BLE001 - e.g. coordinator not available yet
            logger.warning("reading committed offsets failed attempt=%s error=%s", attempt, exc)
            await asyncio.sleep(BACKOFF_SECONDS * attempt)
    logger.error("committed offsets unknown: never-committed partitions may be skipped")
    return None
