"""`crm-automation scheduler`: durable timers fired into automation.actions."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from crm_automation import topics
from crm_automation.commands._common import database_probe, settings
from crm_automation.consumer_lag import ConsumerLagMonitor
from crm_automation.process import consuming, run_until_stopped
from processors import scheduler as scheduler_process
from processors.ingest import GROUP
from processors.metrics import SchedulerMetrics


def scheduler() -> None:
    """Run the scheduler: timer commands into Postgres, due actions out to Kafka."""
    s = settings()
    readiness = consuming("scheduler")
    readiness.add_probe("postgres", database_probe(s))

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        lag = ConsumerLagMonitor(
            s, s.group(GROUP), [s.topic(topics.TIMERS)], registry, readiness
        ).start()
        try:
            scheduler_process.run(s, SchedulerMetrics.create(registry), stop, readiness=readiness)
        finally:
            lag.stop()

    run_until_stopped(s, s.scheduler_metrics_port, target, readiness)
