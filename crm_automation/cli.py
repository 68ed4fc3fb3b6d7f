"""The `crm-automation` command: mounts the command groups and loads settings once."""

from __future__ import annotations

import logging

import typer

from crm_automation.commands import (
    db,
    engine,
    events,
    rules,
    run,
    scheduler,
    sink,
    stack,
    timers,
    topics,
)

app = typer.Typer(
    name="crm-automation",
    help="Streaming engine for CRM automation rules on pipeline stages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(db.app, name="db")
app.add_typer(events.app, name="events")
app.add_typer(rules.app, name="rules")
app.add_typer(sink.app, name="sink")
app.command("engine")(engine.engine)
app.command("run")(run.run)
app.command("scheduler")(scheduler.scheduler)
app.add_typer(timers.app, name="timers")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per HTTP request is noise at INFO; failures surface through our own logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app()
