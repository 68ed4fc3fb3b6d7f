"""The rule actions, built from a rule's spec and the event that triggered it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
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
from automation_core.templates import renderer
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


PayloadBuilder = Callable[[StageChanged, str, datetime], Payload]
"""An action compiled for one rule: (event, action id, when the rule runs) -> payload;
raises ActionFailed when the action cannot be built for the item."""


def build_payload(
    spec: ActionSpec, event: StageChanged, action_id: str, runs_at: datetime
) -> Payload:
    """The payload of the action `spec` for `event`; `runs_at` is when the rule runs."""
    return _builder(spec)(event, action_id, runs_at)


def payload_builder(spec: ActionSpec) -> PayloadBuilder:
    """`build_payload` of `spec` as a function, made once per rule: its templates are
    compiled here, not per event."""
    if isinstance(spec, CreateLeadSpec):
        return _create_lead(spec)
    if isinstance(spec, CopyDealSpec):
        return _copy_deal(spec)
    if isinstance(spec, WebhookSpec):
        return lambda event, _action_id, _runs_at: webhook.build(spec, event)
    return _plan_activity(spec)


_builder = functools.lru_cache(maxsize=1024)(payload_builder)
"""For callers with a spec as data (the simulator, tests); the engine's rules keep theirs."""


def _responsible(templates: tuple[str, ...]) -> Callable[[StageChanged, str], str]:
    """Who is responsible: the first template's text; with several, a choice among
    those that render to something, fixed by the action id; else the item's own."""
    renders = tuple(renderer(t, MAX_ID_CHARS) for t in templates)
    if not renders:
        return lambda event, _action_id: event.item.responsible_id
    if len(renders) == 1:  # the usual case: no choice to make among candidates
        (render_one,) = renders
        return lambda event, _action_id: render_one(event).strip() or event.item.responsible_id

    def pick(event: StageChanged, action_id: str) -> str:
        rendered = tuple(r for render in renders if (r := render(event).strip()))
        return ids.pick(rendered, action_id) if rendered else event.item.responsible_id

    return pick


def _create_lead(spec: CreateLeadSpec) -> PayloadBuilder:
    title = renderer(spec.title, MAX_TITLE_CHARS)
    responsible = _responsible(spec.responsible)

    def create_lead(event: StageChanged, action_id: str, _runs_at: datetime) -> CreateLead:
        if event.copy_depth >= CREATION_CHAIN_LIMIT:
            raise ActionFailed("creation_chain_limit")
        item = event.item
        if item.company is None and not item.contacts:
            raise ActionFailed("no_client")
        return CreateLead(
            lead_id=ids.derived_id("lead", action_id),
            title=title(event),
            responsible_id=responsible(event, action_id),
            company=item.company,
            contacts=item.contacts,
            is_repeat=True,
            pipeline_id=spec.pipeline_id,
            stage_id=spec.stage_id,
            copy_depth=event.copy_depth + 1,
        )

    return create_lead


def _copy_deal(spec: CopyDealSpec) -> PayloadBuilder:
    title = None if spec.title is None else renderer(spec.title, MAX_TITLE_CHARS)
    responsible = _responsible(() if spec.responsible is None else (spec.responsible,))

    def copy_deal(event: StageChanged, action_id: str, _runs_at: datetime) -> CopyDeal:
        if event.copy_depth >= CREATION_CHAIN_LIMIT:
            raise ActionFailed("copy_chain_limit")
        item = event.item
        copy = dataclasses.replace(
            item,
            title=(item.title + spec.suffix)[:MAX_TITLE_CHARS] if title is None else title(event),
            responsible_id=responsible(event, action_id),
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

    return copy_deal


def _plan_activity(spec: PlanActivitySpec) -> PayloadBuilder:
    subject = renderer(spec.subject, MAX_TITLE_CHARS)
    description = renderer(spec.description)
    link = None if spec.link is None else renderer(spec.link)
    address = None if spec.address is None else renderer(spec.address, 1000)
    responsible = _responsible(() if spec.responsible is None else (spec.responsible,))

    def plan_activity(event: StageChanged, action_id: str, runs_at: datetime) -> PlanActivity:
        try:
            deadline = (
                runs_at if spec.deadline is None else compute_due(spec.deadline, runs_at, event)
            )
        except TimingError as exc:
            raise ActionFailed(f"deadline: {exc.reason}") from None
        url = None
        if link is not None:
            url = link(event)
            problem = url_problem(url)
            if problem is not None:
                raise ActionFailed(f"invalid_link: {problem}")
        return PlanActivity(
            activity_id=ids.derived_id("activity", action_id),
            subject=subject(event),
            description=description(event),
            deadline=deadline,
            duration_minutes=spec.duration_minutes,
            responsible_id=responsible(event, action_id),
            stage_id=event.stage_id,
            color=spec.color,
            add_to_calendar=spec.add_to_calendar,
            clients=_clients(spec, event),
            invitee_ids=spec.invite,
            address=None if address is None else address(event) or None,
            location_id=spec.location,
            link=url,
            files=spec.files,
            complete_on_stage_exit=spec.complete_on_stage_exit,
            activity_type=spec.activity_type,
        )

    return plan_activity


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
