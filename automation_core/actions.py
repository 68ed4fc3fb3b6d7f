"""The rule actions, built from a rule's spec and the event that triggered it."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from automation_core import ids, webhook
from automation_core.links import url_problem
from automation_core.model import (
    Client,
    CopyDeal,
    CreateLead,
    Payload,
    PlanActivity,
    StageChanged,
)
from automation_core.rule_spec import (
    ActionSpec,
    CopyDealSpec,
    CreateLeadSpec,
    PlanActivitySpec,
    WebhookSpec,
)
from automation_core.templates import render
from automation_core.timing import TimingError, compute_due

CREATION_CHAIN_LIMIT = 3
"""Items automation creates form chains (a copy of a copy, a lead created for a lead that
automation created, ...): the fourth generation is refused, as copies are in Bitrix24,
so no rule set can create items for ever. A refused copy fails with `copy_chain_limit`,
a refused lead with `creation_chain_limit`."""
MAX_TITLE_CHARS = 255
MAX_ID_CHARS = 128


class ActionFailed(Exception):
    """The action cannot be built for this item; `reason` goes to the execution log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def build_payload(
    spec: ActionSpec, event: StageChanged, action_id: str, runs_at: datetime
) -> Payload:
    """The payload of the action `spec` for `event`; `runs_at` is when the rule runs."""
    if isinstance(spec, CreateLeadSpec):
        return _create_lead(spec, event, action_id)
    if isinstance(spec, CopyDealSpec):
        return _copy_deal(spec, event, action_id)
    if isinstance(spec, WebhookSpec):
        return webhook.build(spec, event)
    return _plan_activity(spec, event, action_id, runs_at)


def _responsible(templates: tuple[str, ...], event: StageChanged, action_id: str) -> str:
    if not templates:
        return event.item.responsible_id
    if len(templates) == 1:  # the usual case: no choice to make among candidates
        return render(templates[0], event, MAX_ID_CHARS).strip() or event.item.responsible_id
    rendered = tuple(r for t in templates if (r := render(t, event, MAX_ID_CHARS).strip()))
    return ids.pick(rendered, action_id) if rendered else event.item.responsible_id


def _create_lead(spec: CreateLeadSpec, event: StageChanged, action_id: str) -> CreateLead:
    if event.copy_depth >= CREATION_CHAIN_LIMIT:
        raise ActionFailed("creation_chain_limit")
    item = event.item
    if item.company is None and not item.contacts:
        raise ActionFailed("no_client")
    return CreateLead(
        lead_id=ids.derived_id("lead", action_id),
        title=render(spec.title, event, MAX_TITLE_CHARS),
        responsible_id=_responsible(spec.responsible, event, action_id),
        company=item.company,
        contacts=item.contacts,
        is_repeat=True,
        pipeline_id=spec.pipeline_id,
        stage_id=spec.stage_id,
        copy_depth=event.copy_depth + 1,
    )


def _copy_deal(spec: CopyDealSpec, event: StageChanged, action_id: str) -> CopyDeal:
    if event.copy_depth >= CREATION_CHAIN_LIMIT:
        raise ActionFailed("copy_chain_limit")
    item = event.item
    if spec.title is not None:
        title = render(spec.title, event, MAX_TITLE_CHARS)
    else:
        title = (item.title + spec.suffix)[:MAX_TITLE_CHARS]
    responsible = (spec.responsible,) if spec.responsible is not None else ()
    copy = dataclasses.replace(
        item,
        title=title,
        responsible_id=_responsible(responsible, event, action_id),
        fields=dict(item.fields),
    )
    return CopyDeal(
        deal_id=ids.derived_id("deal", action_id),
        pipeline_id=spec.target_pipeline,
        stage_id=spec.target_stage,
        item=copy,
        source_item_key=event.key,
        copy_depth=event.copy_depth + 1,
    )


def _plan_activity(
    spec: PlanActivitySpec, event: StageChanged, action_id: str, runs_at: datetime
) -> PlanActivity:
    try:
        deadline = runs_at if spec.deadline is None else compute_due(spec.deadline, runs_at, event)
    except TimingError as exc:
        raise ActionFailed(f"deadline: {exc.reason}") from None
    link = None
    if spec.link is not None:
        link = render(spec.link, event)
        problem = url_problem(link)
        if problem is not None:
            raise ActionFailed(f"invalid_link: {problem}")
    responsible = (spec.responsible,) if spec.responsible is not None else ()
    address = None if spec.address is None else render(spec.address, event, 1000) or None
    return PlanActivity(
        activity_id=ids.derived_id("activity", action_id),
        subject=render(spec.subject, event, MAX_TITLE_CHARS),
        description=render(spec.description, event),
        deadline=deadline,
        duration_minutes=spec.duration_minutes,
        responsible_id=_responsible(responsible, event, action_id),
        stage_id=event.stage_id,
        color=spec.color,
        add_to_calendar=spec.add_to_calendar,
        clients=_clients(spec, event),
        invitee_ids=spec.invite,
        address=address,
        location_id=spec.location,
        link=link,
        files=spec.files,
        complete_on_stage_exit=spec.complete_on_stage_exit,
        activity_type=spec.activity_type,
    )


def _clients(spec: PlanActivitySpec, event: StageChanged) -> tuple[Client, ...]:
    if spec.clients == "none":
        return ()
    item = event.item
    contacts = [Client(c.id, "contact", c.full_name, c.email) for c in item.contacts]
    if spec.clients == "first":
        return tuple(contacts[:1])
    if spec.clients.startswith("contact:"):
        position = int(spec.clients.removeprefix("contact:"))
        return tuple(contacts[position - 1 : position])
    company = (
        [] if item.company is None else [Client(item.company.id, "company", item.company.title)]
    )
    return (*contacts, *company)
