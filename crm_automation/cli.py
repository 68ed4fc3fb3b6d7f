"""The `crm-automation` command: mounts the command groups and loads settings once."""

from __future__ import annotations

import logging
import os
import sys

import typer
from confluent_kafka import KafkaException
from pydantic import ValidationError
from pydantic_settings import SettingsError

from crm_automation.commands import (
    alerts,
    db,
    dlq,
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
from crm_automation.commands._common import EXIT_SCHEMA_REGISTRY, configured_settings
from runtime import config_check, health, kafka_clients, logging_setup, schema_registry

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="crm-automation",
    help="Streaming engine for CRM automation rules on pipeline stages.",
    epilog=(
        "Exit codes: 0 done; 1 invalid input (a rules file, an event line) or an unexpected"
        " error; 2 invalid configuration (a CRM_AUTOMATION_* setting, or a service not"
        " configured); 3 Kafka refused the connection or did not confirm a delivery;"
        " 4 Kafka does not answer at its address; 5 Postgres does not answer at its address;"
        " 6 the schema registry does not answer or refused a schema."
        " A service that does not answer is named in one line with where its address came"
        " from (a setting or the local stack's port file) and what to do."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"crm-automation {health.version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """Streaming engine for CRM automation rules on pipeline stages."""


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
app.add_typer(dlq.app, name="dlq")
app.add_typer(alerts.app, name="alerts")


def main() -> None:
    """Load the settings (a clear message if invalid), configure logging, run the command."""
    for warning in config_check.unknown_variables(os.environ):
        sys.stderr.write(f"{warning}\n")
    try:
        settings = configured_settings()
    except (ValidationError, SettingsError) as exc:
        sys.stderr.write("".join(f"{line}\n" for line in config_check.describe(exc)))
        sys.exit(2)
    logging_setup.configure(settings)
    try:
        app()
    except kafka_clients.KafkaNotConfigured as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except schema_registry.SchemaRegistryError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(EXIT_SCHEMA_REGISTRY)
    except kafka_clients.KafkaAuthenticationFailed as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(3)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        sys.stderr.write(
            f"error: Kafka: {error}\n(check CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS and "
            "CRM_AUTOMATION_KAFKA_SECURITY_PROTOCOL: a TLS listener does not answer plaintext)\n"
        )
        sys.exit(3)
    except Exception:
        # Through logging, so a crash is one JSON object too when JSON logs are on.
        logger.exception("command failed")
        sys.exit(1)
