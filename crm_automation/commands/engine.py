"""`crm-automation engine`: the Faust worker evaluating rules for every stage change."""

from __future__ import annotations

import logging
import os
import sys

import faust
from prometheus_client import CollectorRegistry

from crm_automation import topics
from crm_automation.clock import SystemClock
from crm_automation.commands._common import settings
from crm_automation.consumer_lag import ConsumerLagMonitor, Reading
from crm_automation.process import consuming, serve
from crm_automation.watchdog import EXIT_STALLED, StallWatchdog
from streams.app import build_engine, group_id
from streams.faust_compat import IncompatibleFaust, check_versions, partition_state
from streams.metrics import BATCH_SECONDS

logger = logging.getLogger(__name__)


def engine() -> None:
    """Run the engine (Faust worker): stage changes in, actions, timers and executions out."""
    try:
        check_versions()
    except IncompatibleFaust as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    s = settings()
    registry = CollectorRegistry()
    readiness = consuming("engine")
    app = build_engine(s, registry, readiness=readiness)
    events = s.topic(topics.STAGE_CHANGES)

    def batches_done() -> float:
        return registry.get_sample_value(f"{BATCH_SECONDS}_count") or 0.0

    def restart(reason: str) -> None:
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

    on_reading: Reading = lambda _lag, _committed: None  # noqa: E731
    if s.engine_stall_seconds:
        on_reading = StallWatchdog(
            s.engine_stall_seconds, batches_done, restart, SystemClock()
        ).observe
    lag = ConsumerLagMonitor(
        s, group_id(s), [events], registry, readiness, on_reading=on_reading
    ).start()
    server = serve(s, s.engine_metrics_port, registry, readiness)
    # Our logging (plain or JSON) stays: Faust's worker would replace the root handlers,
    # and neither its banner nor its progress spinner on stdout is a log line.
    worker = faust.Worker(
        app, loglevel=logging.getLogger().level or logging.INFO, override_logging=False, quiet=True
    )
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        lag.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
