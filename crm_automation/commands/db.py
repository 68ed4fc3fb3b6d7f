"""`crm-automation db` commands: migrations."""

from __future__ import annotations

import typer

from crm_automation.commands._common import database_settings
from runtime import db

app = typer.Typer(no_args_is_help=True, help="Database schema.")


@app.command("migrate")
def migrate() -> None:
    """Apply the versioned SQL migrations not applied yet (idempotent)."""
    url = database_settings().database_url
    if url is None:
        typer.echo(
            "error: no database configured (CRM_AUTOMATION_DATABASE_URL, or `stack up`)", err=True
        )
        raise typer.Exit(2)
    applied = db.migrate(url.get_secret_value())
    if applied:
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
    else:
        typer.echo("database is up to date")
