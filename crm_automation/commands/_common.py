"""What every command needs: the settings, loaded once per process."""

from __future__ import annotations

from functools import cache

import psycopg

from crm_automation.process import Probe
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
