"""`crm-automation topics` commands."""

from __future__ import annotations

import typer
from confluent_kafka.admin import AdminClient

from crm_automation.commands._common import kafka_settings
from runtime import kafka_clients
from runtime.topics import create_topics, topic_specs

app = typer.Typer(no_args_is_help=True, help="Contract topics.")


@app.command("create")
def create() -> None:
    """Create the contract topics that do not exist yet (idempotent)."""
    s = kafka_settings()
    created = create_topics(AdminClient(kafka_clients.admin_config(s)), s)
    for spec in topic_specs(s):
        state = "created" if spec.name in created else "exists"
        typer.echo(f"{spec.name:<40} partitions={spec.partitions:<3} {state}")
