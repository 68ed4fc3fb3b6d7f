"""Fixtures of the integration tier (the session's `stack` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crm_automation.stack import Stack
from tests.integration.support import settings

__all__ = ["registry_url", "settings"]


@pytest.fixture(scope="session")
def registry_url(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Apicurio Registry's Confluent-compatible URL, started by the stack's own code
    (Kafka, Postgres and Radicale are the session's, configured, so only it is local)."""
    local = Stack(
        stack.settings.model_copy(
            update={
                "home": tmp_path_factory.mktemp("registry-home"),
                "wire_format": "schema-registry",
                "schema_registry_url": None,
            }
        )
    )
    assert [server.name for server in local.local_servers] == ["registry"]
    try:
        local.up()
        assert local.schema_registry_url is not None
        yield local.schema_registry_url
    finally:
        local.down()
