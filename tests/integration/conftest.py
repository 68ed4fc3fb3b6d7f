"""Fixtures of the integration tier (the session's `stack` is in tests/conftest.py)."""

from tests.integration.support import settings

__all__ = ["settings"]
