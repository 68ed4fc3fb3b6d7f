"""`crm-automation scheduler`: durable timers fired into automation.actions."""

from __future__ import annotations

from crm_automation.commands._common import codec_settings, run_consuming_process
from runtime import topics
from scheduler import process as scheduler_process
from scheduler.ingest import GROUP
from scheduler.metrics import SchedulerMetrics


def scheduler() -> None:
    """Run the scheduler: timer commands into Postgres, due actions out to Kafka."""
    s = codec_settings()
    run_consuming_process(
        s,
        "scheduler",
        s.scheduler_metrics_port,
        GROUP,
        [s.topic(topics.TIMERS)],
        lambda registry, stop, readiness: scheduler_process.run(
            s, SchedulerMetrics.create(registry), stop, readiness=readiness
        ),
    )
