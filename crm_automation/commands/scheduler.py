"""`crm-automation scheduler`: durable timers fired into automation.actions."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from crm_automation.commands._common import settings
from crm_automation.process import run_until_stopped
from processors import scheduler as scheduler_process
from processors.metrics import SchedulerMetrics


def scheduler() -> None:
    """Run the scheduler: timer commands into Postgres, due actions out to Kafka."""
    s = settings()

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        scheduler_process.run(s, SchedulerMetrics.create(registry), stop)

    run_until_stopped(s, s.scheduler_metrics_port, target)
