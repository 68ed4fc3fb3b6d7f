"""Rules that can trigger themselves through the items they create are found and named."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from automation_core.rule_cycles import creation_cycles
from crm_automation.commands.rules import app
from tests.unit.rule_builders import rules_yaml, validated


def cycles(rules: str) -> list[str]:
    return [c.describe() for c in creation_cycles(validated(rules).rules)]


LEAD_FOR_EVERY_LEAD = """
- id: lead-for-lead
  trigger: {entity_type: LEAD, pipeline: leads, stage: NEW}
  action: {type: create_lead, title: "Again: {{ title }}", pipeline: leads, stage: NEW}
"""

COPY_BACK_AND_FORTH = """
- id: to-installation
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  action: {type: copy_deal, target_pipeline: installation, target_stage: DONE}
- id: unrelated
  trigger: {entity_type: DEAL, pipeline: sales, stage: NEW}
  action: {type: plan_activity, subject: Call}
- id: back-to-sales
  trigger: {entity_type: DEAL, pipeline: installation, stage: DONE}
  action: {type: copy_deal, target_pipeline: sales, target_stage: WON}
"""


def test_a_rule_whose_created_lead_enters_its_own_stage_triggers_itself() -> None:
    assert cycles(LEAD_FOR_EVERY_LEAD) == [
        "rule lead-for-lead can trigger itself: the item it creates enters leads/NEW,"
        " where it runs again"
    ]


def test_two_rules_copying_into_each_others_stages_form_one_cycle_named_in_order() -> None:
    assert cycles(COPY_BACK_AND_FORTH) == [
        "rules to-installation, back-to-sales can trigger each other:"
        " to-installation → back-to-sales → to-installation"
    ]


def test_a_chain_that_ends_or_a_disabled_rule_is_no_cycle() -> None:
    chain = COPY_BACK_AND_FORTH.replace(
        "target_pipeline: sales, target_stage: WON", "target_pipeline: sales, target_stage: LOST"
    )
    assert cycles(chain) == []
    disabled = LEAD_FOR_EVERY_LEAD.replace(
        "- id: lead-for-lead", "- id: lead-for-lead\n  enabled: false"
    )
    assert cycles(disabled) == []
    assert cycles(LEAD_FOR_EVERY_LEAD.replace("stage: NEW}\n", "stage: IN_PROCESS}\n", 1)) == []


def test_validate_warns_about_each_cycle_and_still_accepts_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(LEAD_FOR_EVERY_LEAD + COPY_BACK_AND_FORTH))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert warnings == [
        f"{path}: warning: rule lead-for-lead can trigger itself: the item it creates enters"
        " leads/NEW, where it runs again; the engine stops such a chain at the third created"
        " item (creation_chain_limit, copy_chain_limit)",
        f"{path}: warning: rules to-installation, back-to-sales can trigger each other:"
        " to-installation → back-to-sales → to-installation; the engine stops such a chain"
        " at the third created item (creation_chain_limit, copy_chain_limit)",
    ]
    assert "OK: " in result.output
