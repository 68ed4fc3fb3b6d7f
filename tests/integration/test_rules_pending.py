"""`rules apply` tells what happens to an edited rule's pending timers, and `--pending
cancel` cancels those of the published version only, on the real stack (engine and
scheduler as processes, the timers in Postgres, the cancellations in the execution log)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

from automation_core.model import Execution, ExecutionStatus
from runtime import codec, topics
from runtime.settings import Settings
from tests.helpers import wait_for
from tests.integration.support import read_topic, run_cli, start_cli, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
  - {id: leads, entity_type: LEAD, stages: [NEW]}
rules:
  - id: renewal
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 30d}
    action: {type: create_lead, title: "TITLE"}
"""


def won(item_id: str) -> str:
    return json.dumps(
        {
            "event_id": f"evt-{item_id}",
            "occurred_at": "2026-11-26T10:00:00Z",
            "entity_type": "DEAL",
            "item_id": item_id,
            "pipeline_id": "sales",
            "stage_id": "WON",
            "item": {
                "title": "Maintenance",
                "responsible_id": "u-7",
                "company": {"id": "c-1", "title": "Müller GmbH"},
                "contacts": [],
            },
        }
    )


def apply(s: Settings, tmp_path: Path, title: str, *options: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("TITLE", title))
    result = run_cli(s, tmp_path, "rules", "apply", str(path), *options)
    assert result.returncode == 0, result.stderr
    return result.stdout


def timers(s: Settings) -> list[tuple[str, str, str, str | None]]:
    """(item key, rule version, status, cancel reason) of every timer."""
    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT item_key, rule_version, status, cancel_reason FROM timers ORDER BY item_key"
        ).fetchall()


def test_an_edited_rules_pending_timers_are_kept_or_cancelled_as_apply_is_told(
    settings: Settings, tmp_path: Path
) -> None:
    apply(settings, tmp_path, "Renew v1")
    processes = [
        start_cli(settings, tmp_path, "engine"),
        start_cli(settings, tmp_path, "scheduler"),
    ]
    try:
        produced = run_cli(
            settings, tmp_path, "events", "produce", "-", input_text=f"{won('1')}\n{won('2')}\n"
        )
        assert produced.returncode == 0, produced.stderr
        first = wait_for(lambda: len(timers(settings)) == 2 and timers(settings), timeout=90)
        (v1,) = {version for _item, version, _status, _reason in first}

        kept = apply(settings, tmp_path, "Renew v2")
        (v2,) = re.findall(rf"rule renewal v{v1} -> v(\w+): ", kept)
        assert (
            f"rule renewal v{v1} -> v{v2}: 2 pending timer(s) of v{v1} will keep firing as"
            f" v{v1} (--pending cancel cancels them)"
        ) in kept

        produced = run_cli(settings, tmp_path, "events", "produce", "-", input_text=won("3"))
        assert produced.returncode == 0, produced.stderr
        wait_for(lambda: len(timers(settings)) == 3, timeout=90, what="the v2 timer")

        cancelled = apply(settings, tmp_path, "Renew v3", "--pending", "cancel")
        assert re.search(
            rf"rule renewal v{v2} -> v\w+: 1 pending timer\(s\) of v{v2} will be cancelled"
            r" \(rule_changed\)",
            cancelled,
        ), cancelled
        final = wait_for(
            lambda: (rows := timers(settings)) and rows[2][2] == "cancelled" and rows,
            timeout=60,
            what="the v2 timer cancelled",
        )
    finally:
        codes = [stop_process(p) for p in processes]
    assert codes == [0, 0]
    assert final == [
        ("DEAL:1", v1, "pending", None),
        ("DEAL:2", v1, "pending", None),
        ("DEAL:3", v2, "cancelled", "rule_changed"),
    ]
    logged = [
        codec.decode_as(m.value(), Execution) for m in read_topic(settings, topics.EXECUTIONS)
    ]
    assert [
        (e.item_key, e.rule_version, e.reason)
        for e in logged
        if e.status is ExecutionStatus.CANCELLED
    ] == [("DEAL:3", v2, "rule_changed")]
