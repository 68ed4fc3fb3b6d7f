"""`crm-automation sink` commands: the consumers that write actions where people work."""

from __future__ import annotations

import threading

import typer
from prometheus_client import CollectorRegistry

from crm_automation.commands._common import settings
from crm_automation.process import run_until_stopped
from sinks import calendar_process, postgres_process
from sinks.metrics import SinkMetrics

app = typer.Typer(no_args_is_help=True, help="Sinks consuming automation.actions.")


@app.command("postgres")
def postgres() -> None:
    """Write leads, copied deals, activities and the execution log into Postgres."""
    s = settings()

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        postgres_process.run(s, SinkMetrics.create(registry), stop)

    run_until_stopped(s, s.sink_postgres_metrics_port, target)


@app.command("calendar")
def calendar() -> None:
    """Write planned activities into CalDAV calendars (people and rooms)."""
    s = settings()

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        calendar_process.run(s, SinkMetrics.create(registry), stop)

    run_until_stopped(s, s.sink_calendar_metrics_port, target)
