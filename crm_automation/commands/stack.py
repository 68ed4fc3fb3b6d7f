"""`crm-automation stack up | down | status`: the local Kafka, Postgres and Radicale."""

from __future__ import annotations

import json
import time

import typer
from rich.console import Console

from crm_automation.commands._common import configured_settings as settings
from crm_automation.stack import Stack, StackError, StackStatus
from crm_automation.stack.kafka_jars import kafka_libs

app = typer.Typer(no_args_is_help=True, help="Start, stop and check the local services.")
console = Console(stderr=True)


@app.command()
def up() -> None:
    """Start whatever is not running (and not configured externally); wait until it answers."""
    stack = Stack(settings())
    started = time.monotonic()
    try:
        with console.status("starting the stack") as spinner:

            def progress(message: str) -> None:
                console.print(f"{time.monotonic() - started:5.1f}s {message}", highlight=False)
                spinner.update(message)

            reports = stack.up(progress)
    except StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    for report in reports:
        typer.echo(f"{report.name:<9} {report.outcome:<8} {report.seconds:6.1f}s  {report.address}")
    typer.echo(f"stack up in {time.monotonic() - started:.1f}s (home: {stack.settings.home})")


@app.command()
def down() -> None:
    """Stop the local servers of this home; external services are left alone."""
    stack = Stack(settings())
    try:
        stopped = stack.down()
    except StackError as exc:
        console.print(f"[red]stack down failed:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Where each service is and whether it answers; exit code 1 if any is down."""
    report = Stack(settings()).status()
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        _print_status(report)
    if not report.all_up:
        raise typer.Exit(1)


def _print_status(report: StackStatus) -> None:
    rows: list[tuple[str, bool, str | None, int | None]] = [
        ("kafka", report.kafka_up, report.kafka_bootstrap, report.kafka_pid),
        ("postgres", report.postgres_up, report.database_url, report.postgres_pid),
        ("caldav", report.caldav_up, report.caldav_url, report.caldav_pid),
    ]
    if report.registry_up is not None:
        rows.append(
            ("registry", report.registry_up, report.schema_registry_url, report.registry_pid)
        )
    for name, is_up, address, pid in rows:
        state = "up" if is_up else "DOWN"
        where = "external" if name in report.external else (f"pid {pid}" if pid else "no process")
        typer.echo(f"{name:<9} {state:<5} {address}  ({where})")


@app.command()
def fetch() -> None:
    """Fetch the Kafka jars from Maven Central into the cache (once; a no-op when cached)."""
    s = settings()
    started = time.monotonic()
    try:
        libs = kafka_libs(s.cache_dir, s.kafka_version, lambda m: console.print(m, highlight=False))
    except StackError as exc:
        console.print(f"[red]fetch failed:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    typer.echo(f"kafka {s.kafka_version} jars in {libs} ({time.monotonic() - started:.1f}s)")
