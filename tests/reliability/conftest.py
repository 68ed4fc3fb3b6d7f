"""Fixtures of the reliability tier: the integration tier's isolated settings, a pipeline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.settings import Settings
from tests.integration.support import settings
from tests.reliability.harness import HEADER, ROWS, Pipeline, running_pipeline

__all__ = ["pipeline", "settings"]


@pytest.fixture
def pipeline(stack: Any, settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    """Rules applied and all four processors running; stopped (SIGTERM) afterwards."""
    with running_pipeline(settings, tmp_path, stack.caldav_url) as running:
        yield running


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:6]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The session's scenario rows as the markdown table of RELIABILITY.md."""
    if ROWS:
        terminalreporter.write_sep("-", "reliability scenarios")
        terminalreporter.write_line(HEADER)
        for row in ROWS:
            terminalreporter.write_line(row.line())
