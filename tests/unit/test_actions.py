"""The three actions and their parameters, through `evaluate` on validated rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from automation_core.evaluate import ItemState, evaluate
from automation_core.model import (
    ActionMode,
    Client,
    CopyDeal,
    CreateLead,
    ExecutionStatus,
    PlanActivity,
)
from tests.unit.rule_builders import event, index, item, utc


def run(rules: str, **event_changes: Any) -> Any:
    return evaluate(event(**event_changes), None, index(rules))


def only_payload(rules: str, **event_changes: Any) -> Any:
    decision = run(rules, **event_changes)
    [action] = [*decision.actions, *(t.action for t in decision.timers)]
    return action.payload


LEAD = """
- id: renewal
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  when: {delay: 180d}
  action: {type: create_lead, title: "Renew: {{ company.title }} / {=Document:TITLE}"%s}
"""


def test_repeat_lead_is_scheduled_180_days_after_the_deal_is_won() -> None:
    decision = run(LEAD % "")
    [timer] = decision.timers
    assert timer.due_at == utc("2027-05-25T10:00:00Z")
    assert timer.stage_entry_id == "evt-1" and timer.rule_id == "renewal"
    assert timer.action is not None and timer.action.mode is ActionMode.DELAYED
    lead = timer.action.payload
    assert isinstance(lead, CreateLead)
    assert lead.title == "Renew: Müller GmbH / Maintenance Müller GmbH"
    assert lead.responsible_id == "u-7"  # the item's, by default
    assert (lead.pipeline_id, lead.stage_id) == ("leads", "NEW")
    assert lead.company == item().company and lead.contacts == item().contacts
    assert lead.lead_id == f"lead-{timer.action.action_id}"
    [execution] = decision.executions
    assert execution.status is ExecutionStatus.SCHEDULED
    assert execution.due_at == timer.due_at


def test_repeat_lead_picks_one_of_several_responsibles_deterministically() -> None:
    rules = LEAD % ", responsible: [u-1, u-2, u-3]"
    picks = {only_payload(rules, event_id=f"evt-{n}").responsible_id for n in range(30)}
    assert picks == {"u-1", "u-2", "u-3"}
    assert only_payload(rules).responsible_id == only_payload(rules).responsible_id


def test_a_created_lead_is_one_generation_after_its_source_and_the_fourth_is_refused() -> None:
    assert only_payload(LEAD % "").copy_depth == 1  # the deal a person moved: generation 0
    assert only_payload(LEAD % "", copy_depth=2).copy_depth == 3
    decision = run(LEAD % "", copy_depth=3)
    assert decision.timers == () and decision.actions == ()
    [execution] = decision.executions
    assert (execution.status, execution.reason) == (ExecutionStatus.FAILED, "creation_chain_limit")


def test_repeat_lead_for_an_item_without_client_fails_with_a_reason() -> None:
    decision = run(LEAD % "", the_item=item(company=None, contacts=()))
    assert decision.timers == () and decision.actions == ()
    [execution] = decision.executions
    assert (execution.status, execution.reason) == (ExecutionStatus.FAILED, "no_client")


COPY = """
- id: copy
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  action: {type: copy_deal, target_pipeline: installation%s}
"""


@pytest.mark.parametrize(
    ("params", "title", "stage", "responsible"),
    [
        pytest.param("", "Maintenance Müller GmbH (copy)", "NEW", "u-7", id="defaults"),
        pytest.param(
            ", suffix: ' Kopie'", "Maintenance Müller GmbH Kopie", "NEW", "u-7", id="suffix"
        ),
        pytest.param(
            ", title: 'Install {{ item.UF_CONTRACT_NO }}'",
            "Install MV-17",
            "NEW",
            "u-7",
            id="title-template",
        ),
        pytest.param(
            ", target_stage: SCHEDULED",
            "Maintenance Müller GmbH (copy)",
            "SCHEDULED",
            "u-7",
            id="target-stage",
        ),
        pytest.param(
            ", responsible: u-9", "Maintenance Müller GmbH (copy)", "NEW", "u-9", id="responsible"
        ),
    ],
)
def test_copy_deal_parameters(params: str, title: str, stage: str, responsible: str) -> None:
    copy = only_payload(COPY % params)
    assert isinstance(copy, CopyDeal)
    assert (copy.item.title, copy.stage_id, copy.item.responsible_id) == (title, stage, responsible)
    assert replace(copy.item, title=item().title, responsible_id="u-7") == item()


def test_copy_of_a_third_generation_copy_is_refused() -> None:
    assert only_payload(COPY % "", copy_depth=2).copy_depth == 3
    decision = run(COPY % "", copy_depth=3)
    assert decision.actions == ()
    [execution] = decision.executions
    assert (execution.status, execution.reason) == (ExecutionStatus.FAILED, "copy_chain_limit")


ACTIVITY = """
- id: call-client
  trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
  %s
  action:
    type: plan_activity
    subject: "Call {{ company.title }}"
    %s
"""


@pytest.mark.parametrize(
    ("params", "attribute", "expected"),
    [
        pytest.param("", "deadline", utc("2026-11-26T10:00:00Z"), id="deadline-default-now"),
        pytest.param(
            "deadline: {delay: 1d, at: '14:00', timezone: Europe/Berlin}",
            "deadline",
            utc("2026-11-27T13:00:00Z"),
            id="deadline-tomorrow-14h",
        ),
        pytest.param(
            "deadline: {datetime: '2026-12-01T10:00:00+01:00'}",
            "deadline",
            utc("2026-12-01T09:00:00Z"),
            id="deadline-absolute",
        ),
        pytest.param(
            "deadline: {field: close_date, offset: -1d, at: '10:00', timezone: UTC}",
            "deadline",
            utc("2026-11-29T10:00:00Z"),
            id="deadline-before-close-date",
        ),
        pytest.param(
            "description: 'Talk to {{ contact.name }} {{ contact.last_name }}'",
            "description",
            "Talk to Anna Müller",
            id="description-template",
        ),
        pytest.param("", "responsible_id", "u-7", id="responsible-default"),
        pytest.param("responsible: u-12", "responsible_id", "u-12", id="responsible"),
        pytest.param(
            "responsible: '  {{ item.UF_CONTRACT_NO }} '",
            "responsible_id",
            "MV-17",
            id="responsible-template",
        ),
        pytest.param(
            "responsible: '{{ item.UF_NONE }}'",
            "responsible_id",
            "u-7",
            id="responsible-empty-template",
        ),
        pytest.param("color: yellow", "color", "yellow", id="colour"),
        pytest.param("calendar: {duration: 45m}", "add_to_calendar", True, id="calendar"),
        pytest.param("calendar: {duration: 45m}", "duration_minutes", 45, id="duration"),
        pytest.param("clients: none", "clients", (), id="clients-none"),
        pytest.param(
            "clients: first",
            "clients",
            (Client("p-1", "contact", "Anna Müller", "anna@example.com"),),
            id="clients-first",
        ),
        pytest.param(
            "clients: all",
            "clients",
            (
                Client("p-1", "contact", "Anna Müller", "anna@example.com"),
                Client("p-2", "contact", "Ben Kurz", "ben@example.com"),
                Client("c-1", "company", "Müller GmbH"),
            ),
            id="clients-all",
        ),
        pytest.param("invite: [u-12, u-13]", "invitee_ids", ("u-12", "u-13"), id="invite"),
        pytest.param(
            "address: 'Hauptstr. 1, {{ company.title }}'",
            "address",
            "Hauptstr. 1, Müller GmbH",
            id="address",
        ),
        pytest.param(
            "location: room-1\n    calendar: true", "location_id", "room-1", id="location"
        ),
        pytest.param(
            "clients: {contact: 2}",
            "clients",
            (Client("p-2", "contact", "Ben Kurz", "ben@example.com"),),
            id="clients-second-contact",
        ),
        pytest.param("clients: {contact: 3}", "clients", (), id="clients-missing-contact"),
        pytest.param(
            "link: 'https://crm.example.com/deal/{{ item_id }}'",
            "link",
            "https://crm.example.com/deal/4711",
            id="link-template",
        ),
        pytest.param(
            "files: ['https://files.example.com/a.pdf']",
            "files",
            ("https://files.example.com/a.pdf",),
            id="files",
        ),
        pytest.param(
            "complete_on_stage_exit: true",
            "complete_on_stage_exit",
            True,
            id="complete-on-stage-exit",
        ),
        pytest.param("", "stage_id", "APPROVAL", id="created-for-stage"),
        pytest.param("", "subject", "Call Müller GmbH", id="subject-template"),
    ],
)
def test_plan_activity_parameters(params: str, attribute: str, expected: Any) -> None:
    activity = only_payload(ACTIVITY % ("", params), **{"stage": "APPROVAL"})
    assert isinstance(activity, PlanActivity)
    assert getattr(activity, attribute) == expected


def test_activity_deadline_counts_from_when_the_rule_runs() -> None:
    rules = ACTIVITY % ("when: {delay: 2d}", "deadline: {delay: 1h}")
    activity = only_payload(rules, stage="APPROVAL")
    assert activity.deadline == utc("2026-11-28T11:00:00Z")


def test_a_link_that_renders_into_an_invalid_url_fails_the_rule() -> None:
    rules = ACTIVITY % ("", "link: 'https://crm.example.com/{{ item.UF_CONTRACT_NO }}'")
    decision = run(rules, stage="APPROVAL", the_item=item(fields={"UF_CONTRACT_NO": "a b"}))
    [execution] = decision.executions
    assert execution.status is ExecutionStatus.FAILED
    assert execution.reason is not None and execution.reason.startswith("invalid_link")


def test_a_template_value_is_inserted_literally_never_expanded_again() -> None:
    rules = ACTIVITY % ("", "description: '{{ item.title }}'")
    activity = only_payload(
        rules, stage="APPROVAL", the_item=item(title="{{ company.title }} {=Document:ID}")
    )
    assert activity.description == "{{ company.title }} {=Document:ID}"


def test_rendered_text_is_capped() -> None:
    rules = ACTIVITY % ("", "description: '{{ item.title }}{{ item.title }}'")
    activity = only_payload(rules, stage="APPROVAL", the_item=item(title="x" * 5000))
    assert len(activity.description) == 8000 and activity.description.endswith("…")


def test_condition_false_skips_the_rule_with_its_reason() -> None:
    rules = ACTIVITY % ("condition: {all: [{field: amount, op: gt, value: '50000'}]}", "")
    decision = run(rules, stage="APPROVAL")
    [execution] = decision.executions
    assert execution.status is ExecutionStatus.SKIPPED
    assert execution.reason == "condition false: any[0].all[0] item.amount gt: false"


def test_a_due_time_in_the_past_fires_at_once() -> None:
    rules = ACTIVITY % ("when: {field: begin_date, timezone: UTC}", "")
    decision = run(rules, stage="APPROVAL")
    [action] = decision.actions
    assert action.mode is ActionMode.IMMEDIATE and action.due_at is None
    assert decision.executions[0].status is ExecutionStatus.FIRED


ORDERED = """
- id: first
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  when: {delay: 1h}
  action: {type: copy_deal, target_pipeline: installation}
- id: second
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  after_previous: true
  when: {delay: 10m}
  action: {type: copy_deal, target_pipeline: installation, target_stage: DONE}
- id: third
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  when: {delay: 10m}
  action: {type: copy_deal, target_pipeline: installation}
"""


def test_after_previous_waits_for_the_rule_above_and_others_do_not() -> None:
    decision = run(ORDERED)
    due = {t.rule_id: t.due_at for t in decision.timers}
    assert due == {
        "first": utc("2026-11-26T11:00:00Z"),
        "second": utc("2026-11-26T11:00:00Z"),
        "third": utc("2026-11-26T10:10:00Z"),
    }


def test_a_rule_that_opts_out_of_cancellation_is_scheduled_without_a_stage_entry() -> None:
    rules = (LEAD % "").replace("when:", "cancel_on_stage_exit: false\n  when:")
    [timer] = run(rules).timers
    assert timer.stage_entry_id is None
    assert timer.action is not None and timer.action.stage_entry_id == "evt-1"


def test_reentering_a_stage_fires_its_rules_again_with_new_ids() -> None:
    idx = index(COPY % "")
    first = evaluate(event("WON", event_id="e1"), None, idx)
    assert first.new_state is not None
    away = evaluate(event("LOST", event_id="e2", at="2026-11-27T10:00:00Z"), first.new_state, idx)
    assert away.new_state is not None
    back = evaluate(event("WON", event_id="e3", at="2026-11-28T10:00:00Z"), away.new_state, idx)
    assert len(back.actions) == 1 and back.actions[0].action_id != first.actions[0].action_id


def test_an_event_for_the_stage_the_item_is_already_in_fires_nothing() -> None:
    state = ItemState("sales", "WON", "e1", utc("2026-11-26T09:00:00Z"), ("e1",))
    decision = evaluate(event("WON", event_id="e2"), state, index(COPY % ""))
    assert decision.outcome == "processed" and decision.executions == ()
    assert decision.new_state is not None and decision.new_state.stage_entry_id == "e1"
