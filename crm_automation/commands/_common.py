"""What every command needs: the settings, loaded once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

import psycopg
import typer
from prometheus_client import CollectorRegistry

from crm_automation.stack import Stack
from crm_automation.stack.processes import port_open
from crm_automation.stack.stack import mask_password
from runtime import kafka_clients, schema_registry
from runtime.consumer_lag import ConsumerLagMonitor
from runtime.health import Probe, Readiness, consuming, run_until_stopped
from runtime.settings import Settings


@cache
def configured_settings() -> Settings:
    """The settings exactly as configured (the `stack` commands decide what to start)."""
    return Settings()


@cache
def settings() -> Settings:
    """The settings with the local stack's addresses filled in where none is configured."""
    return Stack(configured_settings()).resolved_settings()


@cache
def codec_settings() -> Settings:
    """`settings()`, with the codec set up for the configured wire format: registry ids
    read when a registry is configured, our schemas registered and written in the
    registry wire format when that format is chosen (`SchemaRegistryError`: exit 6)."""
    s = settings()
    schema_registry.configure(s)
    return s


EXIT_KAFKA = 3
"""Kafka refused the client or did not confirm a delivery."""
EXIT_KAFKA_UNREACHABLE = 4
EXIT_DATABASE_UNREACHABLE = 5
EXIT_SCHEMA_REGISTRY = 6
"""The schema registry did not answer or refused our schemas."""
_REACH_SECONDS = 3.0


def kafka_settings() -> Settings:
    """`settings()`, once a Kafka bootstrap server answers; else one line saying where the
    address came from and what to do, and exit EXIT_KAFKA_UNREACHABLE (instead of
    librdkafka retrying for half a minute with a line per attempt)."""
    s = settings()
    kafka_clients.admin_config(s)  # a configuration problem first (KafkaNotConfigured: exit 2)
    servers = [a.strip() for a in (s.kafka_bootstrap_servers or "").split(",") if a.strip()]
    if not any(_answers(address) for address in servers):
        if configured_settings().kafka_bootstrap_servers:
            origin, fix = "CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS", "check the setting"
        else:
            origin = f"the local stack's port file {s.home / 'stack' / 'ports.json'}"
            fix = "start the stack with `crm-automation stack up`"
        typer.echo(
            f"error: Kafka does not answer at {','.join(servers) or '(none)'}"
            f" (from {origin}): {fix}",
            err=True,
        )
        raise typer.Exit(EXIT_KAFKA_UNREACHABLE)
    return codec_settings()


def database_settings() -> Settings:
    """`settings()`, once Postgres answers; else one line (address, where it came from,
    what to do) and exit EXIT_DATABASE_UNREACHABLE."""
    s = settings()
    assert s.database_url is not None  # noqa: S101 - the stack fills it in when unset
    url = s.database_url.get_secret_value()
    try:
        with psycopg.connect(url, connect_timeout=int(_REACH_SECONDS)):
            pass
    except psycopg.Error as exc:
        if configured_settings().database_url is not None:
            origin, fix = "CRM_AUTOMATION_DATABASE_URL", "check the setting"
        else:
            origin = f"the local stack's port file {s.home / 'stack' / 'ports.json'}"
            fix = "start the stack with `crm-automation stack up`"
        text = str(exc).strip()
        reason = text.splitlines()[0].strip() if text else type(exc).__name__
        typer.echo(
            f"error: Postgres does not answer at {mask_password(url)} (from {origin}):"
            f" {fix} ({reason})",
            err=True,
        )
        raise typer.Exit(EXIT_DATABASE_UNREACHABLE) from None
    return s


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return False
    return port_open(host.strip("[]"), int(port), timeout=_REACH_SECONDS)


def database_probe(s: Settings) -> Probe:
    """A /readyz probe: None when Postgres answers `SELECT 1` within 2 s, else a reason."""

    def probe() -> str | None:
        if s.database_url is None:
            return "no database configured"
        try:
            with psycopg.connect(s.database_url.get_secret_value(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"database unreachable ({type(exc).__name__})"
        return None

    return probe


ProcessBody = Callable[[CollectorRegistry, threading.Event, Readiness], None]


def run_consuming_process(
    s: Settings,
    name: str,
    port: int,
    group: str,
    sources: list[str],
    body: ProcessBody,
    *,
    needs_database: bool = True,
) -> None:
    """Run `body` as a processor that consumes `sources` as `group`.

    /readyz needs the processor's own "consuming" condition and, if it writes to Postgres,
    a database that answers; the group's consumer lag is reported while it runs; SIGTERM
    sets `stop`.
    """
    readiness = consuming(name)
    if needs_database:
        readiness.add_probe("postgres", database_probe(s))

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        lag = ConsumerLagMonitor(s, s.group(group), sources, registry, readiness).start()
        try:
            body(registry, stop, readiness)
        finally:
            lag.stop()

    run_until_stopped(s, name, port, target, readiness)
