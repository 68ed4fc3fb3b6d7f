"""What every command needs: the settings, loaded once per process."""

from __future__ import annotations

from functools import cache

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
