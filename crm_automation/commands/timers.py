"""`crm-automation timers` commands: what the scheduler holds, for operators."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

import psycopg
import typer

from crm_automation.commands._common import database_settings
from scheduler import timer_report

app = typer.Typer(no_args_is_help=True, help="Durable timers held by the scheduler.")

_STATUSES = ("pending", "fired", "cancelled", "all")


def _connect() -> psycopg.Connection:
    url = database_settings().database_url
    if url is None:
        typer.echo(
            "error: no database configured (CRM_AUTOMATION_DATABASE_URL, or `stack up`)", err=True
        )
        raise typer.Exit(2)
    return psycopg.connect(url.get_secret_value(), autocommit=True)


def _json_value(value: object) -> object:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("list")
def list_(
    item: str | None = typer.Option(None, "--item", help="Item key, e.g. DEAL:4711."),
    rule: str | None = typer.Option(None, "--rule", help="Rule id."),
    due_before: str | None = typer.Option(
        None, "--due-before", help="ISO 8601 time (UTC if no offset)."
    ),
    status: str = typer.Option("pending", "--status", help="pending, fired, cancelled or all."),
    limit: int = typer.Option(100, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per timer."),
) -> None:
    """Timers in due order, one per line: due time, status, timer id, item, rule."""
    if status not in _STATUSES:
        raise typer.BadParameter(f"--status must be one of {', '.join(_STATUSES)}")
    before = _moment(due_before) if due_before else None
    with _connect() as conn:
        rows = timer_report.list_timers(
            conn,
            item_key=item,
            rule_id=rule,
            due_before=before,
            status=None if status == "all" else status,
            limit=limit,
        )
    for row in rows:
        if as_json:
            typer.echo(json.dumps({k: _json_value(v) for k, v in asdict(row).items()}))
            continue
        typer.echo(
            f"{row.due_at.astimezone(UTC).isoformat()}\t{row.status}\t{row.timer_id}"
            f"\t{row.item_key}\t{row.rule_id}"
        )
    if len(rows) == limit:
        typer.echo(f"(first {limit}; use --limit for more)", err=True)


@app.command("stats")
def stats(
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Pending, overdue and next due timers; fired and cancelled totals."""
    with _connect() as conn:
        s = timer_report.timer_stats(conn, datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps({k: _json_value(v) for k, v in asdict(s).items()}))
        return
    typer.echo(f"pending\t{s.pending}")
    typer.echo(f"overdue\t{s.overdue}")
    typer.echo(f"next_due\t{s.next_due.astimezone(UTC).isoformat() if s.next_due else '-'}")
    typer.echo(f"fired\t{s.fired}")
    typer.echo(f"cancelled\t{s.cancelled}")
