"""`rules validate` and `rules test`: offline, on files, with readable output."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crm_automation.commands.rules import app

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "rules.example.yaml"
ITEM = {
    "title": "Maintenance Müller GmbH",
    "responsible_id": "u-7",
    "amount": "12000.00",
    "currency": "EUR",
    "company": {"id": "c-1", "title": "Müller GmbH"},
    "contacts": [{"id": "p-1", "name": "Anna", "last_name": "Müller"}],
    "fields": {"UF_CONTRACT_NO": "MV-17"},
}


def test_validate_prints_a_summary_for_a_valid_file() -> None:
    result = CliRunner().invoke(app, ["validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "OK: 3 pipeline(s), 1 working-time calendar(s), 3 rule(s) (3 enabled)" in result.output


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        EXAMPLE.read_text()
        .replace("stage: APPROVAL", "stage: APPROVL")
        .replace("Europe/Berlin}", "Europe/Berln}")
    )
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "rules[2] (call-client).trigger.stage: unknown stage 'APPROVL'" in result.output
    assert (
        "rules[2] (call-client).action.deadline.timezone: unknown time zone 'Europe/Berln'"
        in result.output
    )
    assert "2 problem(s); nothing accepted." in result.output


def test_test_prints_what_each_event_would_do_and_when(tmp_path: Path) -> None:
    events = [
        {
            "event_id": "e1",
            "occurred_at": "2026-11-26T10:00:00Z",
            "entity_type": "DEAL",
            "item_id": "4711",
            "pipeline_id": "sales",
            "stage_id": "APPROVAL",
            "item": ITEM,
        },
        {
            "event_id": "e2",
            "occurred_at": "2026-11-27T09:00:00Z",
            "entity_type": "DEAL",
            "item_id": "4711",
            "pipeline_id": "sales",
            "stage_id": "WON",
            "item": ITEM,
        },
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [*events, events[1]]) + "\n")
    result = CliRunner().invoke(app, ["test", str(EXAMPLE), str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "rule call-client: fired: plan activity 'Call the client' for u-7, deadline "
        "2026-11-27T13:00:00+00:00" in lines[1]
    )
    assert "  cancel pending timers of stage entry e1" in lines
    assert any(
        "rule renewal-lead: scheduled at 2027-05-26T09:00:00+00:00: create lead" in line
        for line in lines
    )
    assert lines[-1].endswith("DEAL:4711 → sales/WON: duplicate")
