"""What every command needs: the settings, loaded once per process."""

from __future__ import annotations

from functools import cache

from crm_automation.settings import Settings


@cache
def settings() -> Settings:
    return Settings()
