"""The engine's liveness watchdog wiring: a stalled engine reports its books and exits."""

from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import CollectorRegistry

from runtime import topics
from runtime.clock import SystemClock
from runtime.consumer_lag import Reading
from runtime.health import Readiness
from runtime.settings import Settings
from runtime.watchdog import EXIT_STALLED, StallWatchdog
from streams.faust_compat import partition_state
from streams.metrics import BATCH_SECONDS

logger = logging.getLogger(__name__)


def stall_watchdog(
    settings: Settings, app: Any, registry: CollectorRegistry, readiness: Readiness
) -> Reading:
    """What the consumer-lag monitor calls with each reading of the engine's group: the
    watchdog when `engine_stall_seconds` is set, else nothing. Progress is the count of
    batches done; on a stall the process logs Faust's books and exits with EXIT_STALLED
    (Kafka keeps the unprocessed events for the restarted engine)."""
    if not settings.engine_stall_seconds:
        return lambda _lag, _committed: None
    events = settings.topic(topics.STAGE_CHANGES)

    def batches_done() -> float:
        return registry.get_sample_value(f"{BATCH_SECONDS}_count") or 0.0

    def exit_stalled(reason: str) -> None:
        try:
            books = partition_state(app.consumer, events)
        except RuntimeError as exc:  # the event loop changed them while we read
            books = f"partition state unavailable ({exc})"
        logger.error(
            "engine stalled: %s; exiting with %s to be restarted; %s", reason, EXIT_STALLED, books
        )
        readiness.not_ready("liveness", "stalled")
        logging.shutdown()  # flush every handler: os._exit skips it
        os._exit(EXIT_STALLED)

    clock = SystemClock()
    return StallWatchdog(settings.engine_stall_seconds, batches_done, exit_stalled, clock).observe
