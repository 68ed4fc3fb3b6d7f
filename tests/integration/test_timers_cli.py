"""`timers list` and `timers stats` read the scheduler's table, as text or JSON for tools."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from runtime.settings import Settings
from tests.integration.support import run_cli

pytestmark = pytest.mark.integration

DUE = datetime(2027, 5, 26, 9, 0, tzinfo=UTC)


def test_timers_list_and_stats_print_json_objects(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute(
            "INSERT INTO timers (timer_id, item_key, stage_entry_id, rule_id, rule_version,"
            " event_id, issued_at, due_at, action) VALUES"
            " ('t-1', 'DEAL:4711', 'evt-2', 'renewal-lead', 'v1', 'evt-2', %s, %s, '\\x00')",
            (datetime(2026, 11, 27, 9, 0, tzinfo=UTC), DUE),
        )

    listed = run_cli(settings, tmp_path, "timers", "list", "--json")
    stats = run_cli(settings, tmp_path, "timers", "stats", "--json")

    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {
            "timer_id": "t-1",
            "item_key": "DEAL:4711",
            "rule_id": "renewal-lead",
            "stage_entry_id": "evt-2",
            "due_at": DUE.isoformat(),
            "status": "pending",
            "fired_at": None,
            "cancel_reason": None,
        }
    ]
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout) == {
        "pending": 1,
        "overdue": 0,
        "next_due": DUE.isoformat(),
        "fired": 0,
        "cancelled": 0,
    }
