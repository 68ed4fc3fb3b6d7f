"""`crm-automation engine`: the Faust worker evaluating rules for every stage change."""

from __future__ import annotations

import logging
import sys

import faust

from crm_automation.commands._common import codec_settings
from runtime import topics
from runtime.consumer_lag import ConsumerLagMonitor
from runtime.health import consuming, process_registry, serve
from streams.app import build_engine, group_id, use_event_loop
from streams.faust_compat import IncompatibleFaust, check_versions
from streams.liveness import stall_watchdog


def engine() -> None:
    """Run the engine (Faust worker): stage changes in, actions, timers and executions out."""
    try:
        check_versions()
    except IncompatibleFaust as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    s = codec_settings()
    use_event_loop(s.engine_event_loop)
    registry = process_registry("engine")
    readiness = consuming("engine")
    app = build_engine(s, registry, readiness=readiness)
    lag = ConsumerLagMonitor(
        s,
        group_id(s),
        [s.topic(topics.STAGE_CHANGES)],
        registry,
        readiness,
        on_reading=stall_watchdog(s, app, registry, readiness),
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
