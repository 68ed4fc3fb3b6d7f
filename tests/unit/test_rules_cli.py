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
    lines = bad.read_text().splitlines()
    stage_line = next(n for n, text in enumerate(lines, 1) if "stage: APPROVL" in text)
    zone_line = next(n for n, text in enumerate(lines, 1) if "deadline:" in text)
    assert (
        f"{bad}:{stage_line}: rules[2] (call-client).trigger.stage: unknown stage 'APPROVL'"
        in result.output
    )
    assert (
        f"{bad}:{zone_line}: rules[2] (call-client).action.deadline.timezone: unknown time zone"
        " 'Europe/Berln'" in result.output
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
    # Times in the rule's zone: "tomorrow 14:00 Berlin", and 09:00 UTC in May is 11:00.
    assert (
        "rule call-client: fired: plan call 'Call the client' for u-7, deadline "
        "2026-11-27T14:00:00+01:00 (Europe/Berlin)" in lines[1]
    )
    assert "invitees u-12, room room-1, link https://contracts.example.com/deals/4711" in lines[1]
    assert "  cancel pending timers of stage entry e1" in lines
    assert any(
        "rule renewal-lead: scheduled at 2027-05-26T11:00:00+02:00 (Europe/Berlin): create lead"
        in line
        for line in lines
    )
    assert any(line.endswith("DEAL:4711 → sales/WON: duplicate") for line in lines)
    # The created items enter their own pipelines, the lead at its due time, last.
    created = [line for line in lines if " created-" in line]
    assert [line.split(" → ")[1] for line in created] == [
        "installation/NEW: processed (created by rule copy-to-installation, generation 1)",
        "leads/NEW: processed (created by rule renewal-lead, generation 1)",
    ]
    assert lines[-2].startswith("2027-05-26T11:00:00+02:00 (Europe/Berlin) created-lead-")


CHAIN = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
  - {id: p1, entity_type: DEAL, stages: [NEW]}
  - {id: p2, entity_type: DEAL, stages: [NEW]}
  - {id: p3, entity_type: DEAL, stages: [NEW]}
rules:
  - {id: won-to-p1, trigger: {entity_type: DEAL, pipeline: sales, stage: WON},
     action: {type: copy_deal, target_pipeline: p1}}
  - {id: p1-to-p2, trigger: {entity_type: DEAL, pipeline: p1, stage: NEW},
     action: {type: copy_deal, target_pipeline: p2}}
  - {id: p2-to-p3, trigger: {entity_type: DEAL, pipeline: p2, stage: NEW},
     action: {type: copy_deal, target_pipeline: p3}}
  - {id: p3-to-sales, trigger: {entity_type: DEAL, pipeline: p3, stage: NEW},
     action: {type: copy_deal, target_pipeline: sales, target_stage: WON}}
"""


def test_test_follows_copies_into_their_rules_up_to_the_chain_limit_and_prints_json(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(CHAIN)
    won = {
        "event_id": "e1",
        "occurred_at": "2026-11-26T10:00:00Z",
        "entity_type": "DEAL",
        "item_id": "4711",
        "pipeline_id": "sales",
        "stage_id": "WON",
        "item": ITEM,
    }
    update = {**won, "event_id": "e2", "occurred_at": "2026-11-26T11:00:00Z"}
    events = tmp_path / "events.jsonl"
    events.write_text(f"{json.dumps(won)}\n{json.dumps(update)}\n")

    result = CliRunner().invoke(app, ["test", str(rules), str(events), "--json"])

    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(s["pipeline_id"], [(x["rule_id"], x["status"], x["reason"]) for x in s["executions"]])
            for s in steps] == [
        ("sales", [("won-to-p1", "fired", None)]),
        ("p1", [("p1-to-p2", "fired", None)]),
        ("p2", [("p2-to-p3", "fired", None)]),
        ("p3", [("p3-to-sales", "failed", "copy_chain_limit")]),
        ("sales", []),
    ]  # fmt: skip
    assert [s["created_by"]["rule_id"] if s["created_by"] else None for s in steps] == [
        None, "won-to-p1", "p1-to-p2", "p2-to-p3", None
    ]  # fmt: skip
    copy = steps[0]["executions"][0]["action"]["payload"]["CopyDeal"]
    assert (copy["pipeline_id"], copy["copy_depth"]) == ("p1", 1)
    assert steps[1]["item_key"] == f"DEAL:{copy['deal_id']}"
    assert (steps[-1]["outcome"], steps[-1]["entered"]) == ("processed", False)

    plain = CliRunner().invoke(app, ["test", str(rules), str(events)])
    assert plain.output.splitlines()[-1] == (
        "  already in this stage (an update): rules run only on entering it"
    )


def test_test_shows_the_webhook_a_rule_would_post_with_its_rendered_fields(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "pipelines:\n"
        "  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}\n"
        "rules:\n"
        "  - id: notify-erp\n"
        "    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}\n"
        "    when: {delay: 1h}\n"
        "    action:\n"
        "      type: webhook\n"
        "      url: https://erp.example.com/hooks/crm\n"
        '      fields: {order_title: "Won: {{ item.title }}"}\n'
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id": "e1", "occurred_at": "2026-11-26T10:00:00Z", "entity_type": "DEAL",'
        ' "item_id": "7", "pipeline_id": "sales", "stage_id": "WON",'
        ' "item": {"title": "Big deal", "responsible_id": "u-1", "contacts": []}}\n'
    )

    result = CliRunner().invoke(app, ["test", str(rules), str(events)])

    assert result.exit_code == 0, result.output
    assert (
        "  rule notify-erp: scheduled at 2026-11-26T11:00:00+00:00: POST webhook to "
        'https://erp.example.com/hooks/crm with fields {"order_title": "Won: Big deal"}'
    ) in result.output.splitlines()
