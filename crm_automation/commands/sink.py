"""`crm-automation sink` commands: the consumers that write actions where people work."""

from __future__ import annotations

import threading

import typer
from prometheus_client import CollectorRegistry

from crm_automation import topics
from crm_automation.commands._common import database_probe, settings
from crm_automation.consumer_lag import ConsumerLagMonitor
from crm_automation.process import consuming, run_until_stopped
from sinks import calendar_process, postgres_process
from sinks.metrics import SinkMetrics

app = typer.Typer(no_args_is_help=True, help="Sinks consuming automation.actions.")


@app.command("postgres")
def postgres() -> None:
    """Write leads, copied deals, activities and the execution log into Postgres."""
    s = settings()
    readiness = consuming("sink postgres")
    readiness.add_probe("postgres", database_probe(s))
    sources = [s.topic(topics.ACTIONS), s.topic(topics.EXECUTIONS)]

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        lag = ConsumerLagMonitor(
            s, s.group(postgres_process.GROUP), sources, registry, readiness
        ).start()
        try:
            postgres_process.run(s, SinkMetrics.create(registry), stop, readiness=readiness)
        finally:
            lag.stop()

    run_until_stopped(s, s.sink_postgres_metrics_port, target, readiness)


@app.command("calendar")
def calendar() -> None:
    """Write planned activities into CalDAV calendars (people and rooms)."""
    s = settings()
    readiness = consuming("sink calendar")
    readiness.add_probe("postgres", database_probe(s))
    sources = [s.topic(topics.ACTIONS)]

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        lag = ConsumerLagMonitor(
            s, s.group(calendar_process.GROUP), sources, registry, readiness
        ).start()
        try:
            calendar_process.run(s, SinkMetrics.create(registry), stop, readiness=readiness)
        finally:
            lag.stop()

    run_until_stopped(s, s.sink_calendar_metrics_port, target, readiness)
