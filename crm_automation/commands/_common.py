"""What every command needs: the settings, loaded once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

import psycopg
from prometheus_client import CollectorRegistry

from crm_automation.consumer_lag import ConsumerLagMonitor
from crm_automation.process import Probe, Readiness, consuming, run_until_stopped
from crm_automation.settings import Settings
from crm_automation.stack import Stack


@cache
def configured_settings() -> Settings:
    """The settings exactly as configured (the `stack` commands decide what to start)."""
    return Settings()


@cache
def settings() -> Settings:
    """The settings with the local stack's addresses filled in where none is configured."""
    return Stack(configured_settings()).resolved_settings()


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
    s: Settings, name: str, port: int, group: str, sources: list[str], body: ProcessBody
) -> None:
    """Run `body` as a processor that consumes `sources` as `group` and writes to Postgres.

    /readyz needs the processor's own "consuming" condition and a database that answers;
    the group's consumer lag is reported while it runs; SIGTERM sets `stop`.
    """
    readiness = consuming(name)
    readiness.add_probe("postgres", database_probe(s))

    def target(registry: CollectorRegistry, stop: threading.Event) -> None:
        lag = ConsumerLagMonitor(s, s.group(group), sources, registry, readiness).start()
        try:
            body(registry, stop, readiness)
        finally:
            lag.stop()

    run_until_stopped(s, port, target, readiness)
