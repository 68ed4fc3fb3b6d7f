"""`crm-automation run`: the whole pipeline in the foreground, with a live view."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from rich.console import Console

from crm_automation import demo
from crm_automation.commands._common import configured_settings
from crm_automation.commands.rules import load_rules_or_exit
from crm_automation.live_view import scrape, summary_line
from crm_automation.stack import Stack, StackError
from crm_automation.stack.stack import mask_password
from crm_automation.supervisor import Supervisor, processors
from runtime import codec, db, kafka_clients, rules_topic, schema_registry, topics
from runtime.settings import Settings
from runtime.watchdog import EXIT_STALLED
from sinks.webhook import process as webhook_process

console = Console(soft_wrap=True)
# Shipped inside the package so a plain `pip install` finds it (config/ links to it).
EXAMPLE_RULES = Path(__file__).resolve().parents[1] / "examples" / "rules.example.yaml"


def run(
    demo_scenario: Annotated[
        bool, typer.Option("--demo", help="Also replay the seed's three examples and show them.")
    ] = False,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: run until Ctrl-C).")
    ] = 0.0,
    rules_file: Annotated[
        Path, typer.Option("--rules", help="Rules applied when none are published yet.")
    ] = EXAMPLE_RULES,
) -> None:
    """Start the stack if needed, create topics, migrate, apply example rules, run everything."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    stack, ours = _start_stack(started)
    s = _prepare(stack.resolved_settings(), rules_file, started)
    if s.webhook_allowed_hosts:
        try:
            webhook_process.config_of(s)  # the sink's own check, before it is started
        except RuntimeError as exc:
            console.print(f"error: {exc}")
            raise typer.Exit(2) from None
    supervisor = Supervisor(s)
    for processor in processors(s):
        log = supervisor.start(processor)
        console.print(
            f"{_t(started)} {processor.name:<14} metrics http://{s.metrics_host}:"
            f"{processor.metrics_port}/metrics  log {log}",
            highlight=False,
        )
    _where_to_look(s)
    try:
        if demo_scenario:
            _demo(s, stop)
        _live_view(s, supervisor, stop, started, duration)
    finally:
        console.print("stopping processors (SIGTERM: finish the batch, commit, exit)...")
        codes = supervisor.stop()
        console.print(
            "stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()),
            highlight=False,
        )
        _stop_servers(stack, ours)
    failed = {n: c for n, c in codes.items() if c not in (0, -signal.SIGTERM)}
    if failed:
        raise typer.Exit(1)


def _t(started: float) -> str:
    return f"[dim]{time.monotonic() - started:6.1f}s[/dim]"


def _start_stack(started: float) -> tuple[Stack, set[str]]:
    """The stack, up; and the local servers this run started (not those already running,
    e.g. by `stack up`, nor configured services): the ones it stops again at the end."""
    stack = Stack(configured_settings())
    ours: set[str] = set()
    try:
        with console.status("starting the stack (first run: fetching Kafka from Maven Central)"):
            for report in stack.up(lambda m: console.print(f"{_t(started)} {m}", highlight=False)):
                console.print(
                    f"{_t(started)} {report.name:<9} {report.outcome:<8} {report.address}",
                    highlight=False,
                )
                if report.outcome == "started":
                    ours.add(report.name)
    except StackError as exc:
        console.print(f"[red]the stack did not start:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    return stack, ours


def _stop_servers(stack: Stack, ours: set[str]) -> None:
    """Stop the servers this run started; their data stays in the home for the next run."""
    for server in reversed(stack.local_servers):
        if server.name in ours:
            server.stop()
    if ours:
        console.print(
            f"stopped the servers this run started: {', '.join(sorted(ours))}"
            f" (their data stays under {stack.settings.home})",
            highlight=False,
        )


def _prepare(s: Settings, rules_file: Path, started: float) -> Settings:
    created = topics.create_topics(AdminClient(kafka_clients.admin_config(s)), s)
    console.print(f"{_t(started)} topics ready ({len(created)} created)", highlight=False)
    schema_registry.configure(s)
    if s.wire_format == "schema-registry":
        console.print(f"{_t(started)} schemas registered at {s.schema_registry_url}")
    assert s.database_url is not None  # noqa: S101 - resolved_settings fills it in
    applied = db.migrate(s.database_url.get_secret_value())
    console.print(f"{_t(started)} database migrated ({len(applied)} applied)", highlight=False)
    published = rules_topic.read_published(s)
    if not published.rules:
        validated = load_rules_or_exit(rules_file)
        plan = rules_topic.plan_apply(validated, published, prune=False)
        rules_topic.execute(s, plan, datetime.now(UTC))
        console.print(f"{_t(started)} applied {len(validated.rules)} rules from {rules_file}")
    else:
        console.print(f"{_t(started)} {len(published.rules)} rules already published")
    return s


def _where_to_look(s: Settings) -> None:
    console.print(f"Kafka     {s.kafka_bootstrap_servers}", highlight=False)
    console.print(f"Postgres  {mask_password(_database_url(s))}", highlight=False)
    console.print(f"CalDAV    {s.caldav_url} (calendars under /<user>/calendar/)", highlight=False)
    console.print("Ctrl-C stops everything this run started.")


def _database_url(s: Settings) -> str:
    return s.database_url.get_secret_value() if s.database_url else ""


def _demo(s: Settings, stop: threading.Event) -> None:
    run_id = uuid.uuid4().hex[:6]
    now = datetime.now(UTC).replace(microsecond=0)
    producer = Producer(kafka_clients.producer_config(s))
    console.print(
        f"[bold]demo {run_id}[/bold]: deal D-{run_id}-1 enters Approval, deal D-{run_id}-2 "
        f"is won, then D-{run_id}-1 moves on to Payment"
    )
    for event in demo.demo_events(now, run_id):
        producer.produce(
            s.topic(topics.STAGE_CHANGES), key=event.key.encode(), value=codec.encode(event)
        )
        kafka_clients.flush_or_raise(producer)
        if event.stage_id == "APPROVAL":
            stop.wait(3.0)  # let the activity land before the deal moves on
    assert s.database_url is not None and s.caldav_url is not None  # noqa: S101
    deadline = time.monotonic() + 120
    result = demo.read_back(s.database_url.get_secret_value(), s.caldav_url, run_id, now)
    while not result.complete and time.monotonic() < deadline and not stop.wait(1.0):
        result = demo.read_back(s.database_url.get_secret_value(), s.caldav_url, run_id, now)
    console.print("[bold]copied deals[/bold] (Postgres: deals)")
    for row in result.deals:
        console.print("  " + " | ".join(map(str, row)), highlight=False)
    console.print("[bold]activities[/bold] (Postgres: activities)")
    for row in result.activities:
        console.print("  " + " | ".join(map(str, row)), highlight=False)
    console.print(f"[bold]calendar of u-7[/bold] (CalDAV): {len(result.calendar)} event(s)")
    for href in result.calendar:
        console.print(f"  {s.caldav_url.rstrip('/')}{href}", highlight=False)
    console.print("[bold]pending timers[/bold] (scheduler)")
    for row in result.timers:
        console.print("  " + " | ".join(row), highlight=False)
    verdict = "[green]demo complete[/green]" if result.complete else "[red]demo incomplete[/red]"
    console.print(verdict)


def _next_wait(started: float, duration: float) -> float:
    """Seconds to the next summary line: every 5 s, and the last one when `duration` ends."""
    if not duration:
        return 5.0
    return max(0.0, min(5.0, started + duration - time.monotonic()))


def _live_view(
    s: Settings, supervisor: Supervisor, stop: threading.Event, started: float, duration: float
) -> None:
    ports = [p.metrics_port for p in processors(s)]
    by_name = {p.name: p for p in processors(s)}
    while not stop.wait(_next_wait(started, duration)):
        console.print(
            f"{_t(started)} {summary_line(scrape(s.metrics_host, ports))}", highlight=False
        )
        exited = supervisor.exited()
        for name in [n for n, code in exited.items() if code == EXIT_STALLED]:
            console.print(
                f"[yellow]{name} stopped itself (stalled, exit {EXIT_STALLED}): restarting it[/]"
                f"; see {s.home}/logs/{name}.log"
            )
            supervisor.start(by_name[name])
            del exited[name]
        if exited:
            console.print(f"[red]processor exited:[/red] {exited}; see its log under {s.home}/logs")
            raise typer.Exit(1)
        if duration and time.monotonic() - started >= duration:
            return
