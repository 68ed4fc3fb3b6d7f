"""`crm-automation sink` commands: the consumers that write actions where people work."""

from __future__ import annotations

import typer

from crm_automation.commands._common import codec_settings, run_consuming_process
from runtime import topics
from sinks.calendar import process as calendar_process
from sinks.metrics import SinkMetrics
from sinks.postgres import process as postgres_process
from sinks.webhook import process as webhook_process

app = typer.Typer(no_args_is_help=True, help="Sinks consuming automation.actions.")


@app.command("postgres")
def postgres() -> None:
    """Write leads, copied deals, activities and the execution log into Postgres."""
    s = codec_settings()
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
    s = codec_settings()
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


@app.command("webhook")
def webhook() -> None:
    """POST webhook actions to their receivers (signed, retried, allowlisted hosts only)."""
    s = codec_settings()
    try:
        webhook_process.config_of(s)
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    run_consuming_process(
        s,
        "sink webhook",
        s.sink_webhook_metrics_port,
        webhook_process.GROUP,
        [s.topic(topics.ACTIONS)],
        lambda registry, stop, readiness: webhook_process.run(
            s, SinkMetrics.create(registry), stop, readiness=readiness
        ),
        needs_database=False,
    )
