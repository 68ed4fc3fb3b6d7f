"""Domain records: stage changes, items, pipelines, rules, actions, timers, executions."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from automation_core.fast_init import fast_init

FieldValue = str | list[str] | None


class EntityType(enum.StrEnum):
    DEAL = "DEAL"
    LEAD = "LEAD"


@fast_init
@dataclass(frozen=True)
class Company:
    id: str
    title: str


@fast_init
@dataclass(frozen=True)
class Contact:
    id: str
    name: str
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def full_name(self) -> str:
        """Name and last name, those given, with a space between ("" when neither is)."""
        name, last_name = self.name, self.last_name
        if name and last_name:
            return f"{name} {last_name}"
        return name or last_name or ""


@fast_init
@dataclass(frozen=True)
class Item:
    """A CRM item (deal or lead) as the producer saw it when it changed stage."""

    title: str
    responsible_id: str
    amount: Decimal | None = None
    currency: str | None = None
    company: Company | None = None
    contacts: tuple[Contact, ...] = ()
    begin_date: date | None = None
    close_date: date | None = None
    fields: dict[str, FieldValue] = field(default_factory=dict)


@fast_init
@dataclass(frozen=True)
class StageChanged:
    """An item entered a stage. `key` is the Kafka key and the per-item identity."""

    event_id: str
    occurred_at: datetime
    entity_type: EntityType
    item_id: str
    pipeline_id: str
    stage_id: str
    item: Item
    previous_stage_id: str | None = None
    created_by_automation: bool = False
    copy_depth: int = 0
    source_item_key: str | None = None

    @functools.cached_property
    def key(self) -> str:
        # Read for every rule an event triggers; fields are frozen, so compute it once.
        return item_key(self.entity_type, self.item_id)


def item_key(entity_type: EntityType | str, item_id: str) -> str:
    return f"{EntityType(entity_type).value}:{item_id}"


@fast_init
@dataclass(frozen=True)
class Pipeline:
    id: str
    entity_type: EntityType
    stages: tuple[str, ...]

    @property
    def first_stage(self) -> str:
        return self.stages[0]


@fast_init
@dataclass(frozen=True)
class Rule:
    """A validated rule as published on `automation.rules`.

    The trigger is typed (it is what the engine indexes by); the rest of the rule
    (condition, time settings, action parameters, resolved working-time calendar) is
    `spec`, the canonical JSON-compatible dict produced by validation. `version`
    changes whenever the content changes.
    """

    id: str
    version: str
    entity_type: EntityType
    pipeline_id: str
    stage_id: str
    spec: dict[str, Any]
    enabled: bool = True
    position: int = 0
    after_previous: bool = False


class ActionKind(enum.StrEnum):
    CREATE_LEAD = "create_lead"
    COPY_DEAL = "copy_deal"
    PLAN_ACTIVITY = "plan_activity"
    COMPLETE_ACTIVITIES = "complete_activities"
    WEBHOOK = "webhook"


class ActionMode(enum.StrEnum):
    IMMEDIATE = "immediate"
    DELAYED = "delayed"


@fast_init
@dataclass(frozen=True)
class CreateLead:
    lead_id: str
    title: str
    responsible_id: str
    company: Company | None
    contacts: tuple[Contact, ...]
    is_repeat: bool = True
    pipeline_id: str | None = None
    stage_id: str | None = None
    copy_depth: int = 0
    """The lead's generation: how many items automation created in the chain that ends
    with it (its source event's `copy_depth` + 1), as for copied deals."""

    kind = ActionKind.CREATE_LEAD


@fast_init
@dataclass(frozen=True)
class CopyDeal:
    deal_id: str
    pipeline_id: str
    stage_id: str
    item: Item
    source_item_key: str
    copy_depth: int

    kind = ActionKind.COPY_DEAL


@fast_init
@dataclass(frozen=True)
class Client:
    """A client added to an activity: a contact or the company."""

    id: str
    kind: str  # "contact" | "company"
    name: str
    email: str | None = None


@fast_init
@dataclass(frozen=True)
class PlanActivity:
    activity_id: str
    subject: str
    description: str
    deadline: datetime
    duration_minutes: int
    responsible_id: str
    stage_id: str
    color: str | None = None
    add_to_calendar: bool = False
    clients: tuple[Client, ...] = ()
    invitee_ids: tuple[str, ...] = ()
    address: str | None = None
    location_id: str | None = None
    link: str | None = None
    files: tuple[str, ...] = ()
    complete_on_stage_exit: bool = False
    activity_type: str = "task"
    """What is planned, as Bitrix offers it: `call`, `meeting`, `task` or `email`."""

    kind = ActionKind.PLAN_ACTIVITY


@fast_init
@dataclass(frozen=True)
class CompleteActivities:
    """Complete the item's open activities created for `stage_id` (it left that stage).

    The enclosing Action's `stage_entry_id` names the stage entry that was left, so a
    later re-entry into the same stage is not affected.
    """

    stage_id: str
    completed_at: datetime

    kind = ActionKind.COMPLETE_ACTIVITIES


@fast_init
@dataclass(frozen=True)
class CallWebhook:
    """POST a JSON document of the item and the rule's rendered fields to `url` (the
    webhook sink delivers it; automation_core.webhook builds the document)."""

    url: str
    pipeline_id: str
    stage_id: str
    item: Item
    fields: tuple[tuple[str, str], ...] = ()
    """The rule's fields, rendered for the event, in the rule's order."""

    kind = ActionKind.WEBHOOK


Payload = CreateLead | CopyDeal | PlanActivity | CompleteActivities | CallWebhook


@fast_init
@dataclass(frozen=True)
class Action:
    action_id: str
    rule_id: str
    rule_version: str
    item_key: str
    event_id: str
    stage_entry_id: str
    occurred_at: datetime
    mode: ActionMode
    payload: Payload
    due_at: datetime | None = None

    @property
    def kind(self) -> ActionKind:
        return self.payload.kind


class TimerCommandKind(enum.StrEnum):
    SCHEDULE = "SCHEDULE"
    CANCEL_STAGE_ENTRY = "CANCEL_STAGE_ENTRY"
    CANCEL_RULE = "CANCEL_RULE"


@fast_init
@dataclass(frozen=True)
class TimerCommand:
    """Schedule an action at `due_at`, or cancel pending timers of a stage entry or rule.

    A schedule's timer id is its action's id. A stage-entry cancel names the item and the
    stage entry it left; a rule cancel names only the rule.
    """

    kind: TimerCommandKind
    issued_at: datetime
    item_key: str | None = None
    stage_entry_id: str | None = None
    rule_id: str | None = None
    due_at: datetime | None = None
    action: Action | None = None
    rule_version: str | None = None
    """For a rule cancel: only the timers of this version of the rule (the old version of
    an edited rule); None: every version."""


class ExecutionStatus(enum.StrEnum):
    FIRED = "fired"
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    FAILED = "failed"
    STALE = "stale"


@fast_init
@dataclass(frozen=True)
class Execution:
    """One line of the execution log: what happened for an item and a rule."""

    rule_id: str
    item_key: str
    event_id: str
    status: ExecutionStatus
    recorded_at: datetime
    action_id: str | None = None
    rule_version: str | None = None
    due_at: datetime | None = None
    reason: str | None = None
