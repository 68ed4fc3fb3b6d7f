"""Evaluation of stage changes: immediate and delayed actions, cancels, state, duplicates."""

from __future__ import annotations

from automation_core import ids
from automation_core.evaluate import ItemState, evaluate
from automation_core.model import (
    ActionMode,
    CompleteActivities,
    CopyDeal,
    ExecutionStatus,
    TimerCommandKind,
)
from tests.unit.rule_builders import event, index, utc

COPY = """
- id: copy-to-installation
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  action: {type: copy_deal, target_pipeline: installation, responsible: u-9}
"""


def test_won_deal_is_copied_at_once_into_the_first_installation_stage() -> None:
    decision = evaluate(event("WON"), None, index(COPY))
    assert decision.outcome == "processed"
    [action] = decision.actions
    assert action.mode is ActionMode.IMMEDIATE
    assert isinstance(action.payload, CopyDeal)
    assert action.payload.pipeline_id == "installation"
    assert action.payload.stage_id == "NEW"
    assert action.payload.item.title == "Maintenance Müller GmbH (copy)"
    assert action.payload.item.responsible_id == "u-9"
    assert action.payload.item.fields == event().item.fields
    assert action.payload.source_item_key == "DEAL:4711"
    assert action.payload.copy_depth == 1
    [execution] = decision.executions
    assert execution.status is ExecutionStatus.FIRED
    assert execution.action_id == action.action_id
    # The contract of ids (sinks dedupe on them): item key, event id, rule id and version.
    assert action.action_id == ids.action_id(
        "DEAL:4711", "evt-1", "copy-to-installation", action.rule_version, 0
    )
    assert decision.timers == () and decision.cancels == () and decision.completions == ()
    assert decision.new_state == ItemState(
        "sales", "WON", "evt-1", utc("2026-11-26T10:00:00Z"), ("evt-1",)
    )


def test_leaving_a_stage_cancels_its_timers_and_completes_its_activities() -> None:
    state = ItemState("sales", "APPROVAL", "evt-0", utc("2026-11-25T10:00:00Z"), ("evt-0",))
    decision = evaluate(event("WON"), state, index(COPY))
    [cancel] = decision.cancels
    assert cancel.kind is TimerCommandKind.CANCEL_STAGE_ENTRY
    assert (cancel.item_key, cancel.stage_entry_id) == ("DEAL:4711", "evt-0")
    [completion] = decision.completions
    assert completion.payload == CompleteActivities("APPROVAL", utc("2026-11-26T10:00:00Z"))
    assert completion.stage_entry_id == "evt-0"


def test_a_duplicate_event_yields_an_empty_decision() -> None:
    first = evaluate(event("WON"), None, index(COPY))
    again = evaluate(event("WON"), first.new_state, index(COPY))
    assert again.outcome == "duplicate"
    assert again.actions == () and again.executions == () and again.new_state is None


def test_an_event_older_than_the_last_one_is_stale_and_fires_nothing() -> None:
    state = ItemState("sales", "APPROVAL", "evt-0", utc("2026-11-27T10:00:00Z"), ("evt-0",))
    decision = evaluate(event("WON"), state, index(COPY))
    assert decision.outcome == "stale"
    [execution] = decision.executions
    assert execution.status is ExecutionStatus.STALE and execution.rule_id == ""
    assert decision.actions == () and decision.new_state is None
