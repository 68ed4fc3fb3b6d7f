"""`crm-automation sink` commands: the consumers that write actions where people work."""

from __future__ import annotations

import typer

from crm_automation.commands._common import run_consuming_process, settings
from runtime import topics
from sinks.calendar import process as calendar_process
from sinks.metrics import SinkMetrics
from sinks.postgres import process as postgres_process

app = typer.Typer(no_args_is_help=True, help="Sinks consuming automation.actions.")


@app.command("postgres")
def postgres() -> None:
    """Write leads, copied deals, activities and the execution log into Postgres."""
    s = settings()
    run_consuming_process(
        s,
        "sink postgres",
        s.sink_postgres_metrics_port,
        postgres_process.GROUP,
        [s.topic(topics.ACTIONS), s.topic(topics.EXECUTIONS)],
        lambda registry, stop, readiness: postgres_process.run(
            s, SinkMetrics.create(registry), stop, readiness=readiness
        ),
    )


@app.command("calendar")
def calendar() -> None:
    """Write planned activities into CalDAV calendars (people and rooms)."""
    s = settings()
    run_consuming_process(
        s,
        "sink calendar",
        s.sink_calendar_metrics_port,
        calendar_process.GROUP,
        [s.topic(topics.ACTIONS)],
        lambda registry, stop, readiness: calendar_process.run(
            s, SinkMetrics.create(registry), stop, readiness=readiness
        ),
    )
