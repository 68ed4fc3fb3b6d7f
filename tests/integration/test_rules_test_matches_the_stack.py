"""`rules test` shows what the running pipeline does: the guide's rules and events run once
offline (`rules test --json`) and once through the real engine, Postgres sink and
scheduler, and every effect the dry run predicts is what the stack stores (the copies
and the activities with their ids and fields, the timers with their due times, every
rule execution), and nothing else."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from automation_core.event_json import format_timestamp
from runtime.settings import Settings
from tests.helpers import wait_for
from tests.integration.support import run_cli, start_cli, stop_process
from tests.unit.test_docs_examples import files_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def predicted(settings: Settings, tmp_path: Path) -> list[dict[str, Any]]:
    result = run_cli(
        settings, tmp_path, "rules", "test", str(tmp_path / "rules.yaml"),
        str(tmp_path / "events.jsonl"), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def stored(url: str) -> dict[str, set[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:

        def rows(query: str) -> set[tuple[Any, ...]]:
            return {tuple(r) for r in conn.execute(query).fetchall()}

        return {
            "deals": rows("SELECT deal_id, title, pipeline_id, stage_id, copy_depth FROM deals"),
            "activities": rows(
                "SELECT activity_id, subject, deadline, responsible_id, location_id, activity_type"
                " FROM activities"
            ),
            "timers": rows("SELECT timer_id, rule_id, due_at FROM timers"),
            "executions": rows(
                "SELECT item_key, event_id, rule_id, status, coalesce(reason, '') FROM executions"
                " WHERE status IN ('fired', 'scheduled', 'skipped', 'failed')"
            ),
        }


def expected(steps: list[dict[str, Any]]) -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {k: set() for k in ("deals", "activities", "timers")}
    out["executions"] = set()
    for step in steps:
        for ex in step["executions"]:
            reason = ex["reason"] or ""
            out["executions"].add(
                (step["item_key"], step["event_id"], ex["rule_id"], ex["status"], reason)
            )
            action = ex["action"]
            if action is None:
                continue
            if ex["status"] == "scheduled":
                out["timers"].add((action["action_id"], ex["rule_id"], ex["due_at"]))
                continue
            ((kind, payload),) = action["payload"].items()
            if kind == "CopyDeal":
                out["deals"].add(
                    (payload["deal_id"], payload["item"]["title"], payload["pipeline_id"],
                     payload["stage_id"], payload["copy_depth"])
                )  # fmt: skip
            elif kind == "PlanActivity":
                out["activities"].add(
                    (payload["activity_id"], payload["subject"], payload["deadline"],
                     payload["responsible_id"], payload["location_id"], payload["activity_type"])
                )  # fmt: skip
    return out


def as_json_times(found: dict[str, set[tuple[Any, ...]]]) -> dict[str, set[tuple[Any, ...]]]:
    """Timestamps as the JSON view writes them (`...Z`, milliseconds where there are)."""

    def value(v: Any) -> Any:
        return format_timestamp(v) if isinstance(v, datetime) else v

    return {k: {tuple(value(v) for v in row) for row in rows} for k, rows in found.items()}


def test_the_dry_run_predicts_exactly_what_the_stack_stores(
    settings: Settings, tmp_path: Path
) -> None:
    for name in ("rules.yaml", "events.jsonl"):
        (tmp_path / name).write_text(files_of("rule-authors.md")[name])
    steps = predicted(settings, tmp_path)
    want = expected(steps)
    assert want["deals"] and want["activities"] and want["timers"]  # the guide shows all three
    assert {row[5] for row in want["activities"]} == {"call"}
    applied = run_cli(settings, tmp_path, "rules", "apply", str(tmp_path / "rules.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    processes = [
        start_cli(settings, tmp_path, "engine"),
        start_cli(settings, tmp_path, "sink", "postgres"),
        start_cli(settings, tmp_path, "scheduler"),
    ]
    try:
        produced = run_cli(settings, tmp_path, "events", "produce", str(tmp_path / "events.jsonl"))
        assert produced.returncode == 0, produced.stderr
        found = wait_for(
            lambda: (
                (f := as_json_times(stored(url)))
                and all(len(f[k]) >= len(want[k]) for k in want)
                and f
            ),
            timeout=120,
            what="as many rows as the dry run predicts",
        )
    finally:
        codes = [stop_process(p) for p in processes]
    assert codes == [0, 0, 0]
    assert found == want
