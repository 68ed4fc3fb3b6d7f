"""Actions and executions as rows of the sink tables (pure mapping, no I/O)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from automation_core.created_items import announcement
from automation_core.model import (
    Action,
    CompleteActivities,
    CopyDeal,
    CreateLead,
    Execution,
    PlanActivity,
)
from runtime import codec

Row = tuple[Any, ...]

LEAD_COLUMNS = (
    "action_id",
    "rule_id",
    "lead_id",
    "source_item_key",
    "title",
    "responsible_id",
    "company_id",
    "contact_ids",
    "is_repeat",
    "event_occurred_at",
)
DEAL_COLUMNS = (
    "action_id",
    "rule_id",
    "deal_id",
    "source_item_key",
    "title",
    "pipeline_id",
    "stage_id",
    "responsible_id",
    "amount",
    "currency",
    "company_id",
    "contact_ids",
    "fields",
    "copy_depth",
    "event_occurred_at",
    "begin_date",
    "close_date",
    "company_title",
    "contacts",
)
ACTIVITY_COLUMNS = (
    "action_id",
    "rule_id",
    "activity_id",
    "item_key",
    "stage_id",
    "stage_entry_id",
    "subject",
    "description",
    "deadline",
    "duration_minutes",
    "responsible_id",
    "color",
    "add_to_calendar",
    "client_ids",
    "invitee_ids",
    "address",
    "location_id",
    "link",
    "files",
    "complete_on_stage_exit",
    "event_occurred_at",
    "activity_type",
)
COMPLETION_COLUMNS = ("action_id", "item_key", "stage_id", "stage_entry_id", "completed_at")
OUTBOX_COLUMNS = ("action_id", "topic", "key", "value")
EXECUTION_COLUMNS = (
    "execution_key",
    "action_id",
    "rule_id",
    "rule_version",
    "item_key",
    "event_id",
    "status",
    "due_at",
    "reason",
    "recorded_at",
)


@dataclass(frozen=True, slots=True)
class ReadRows:
    """The row of one record read straight from its message (sinks.postgres.row_reader),
    and the announcement of the item it creates, if any."""

    table: str
    """The `Rows` list the row belongs to (leads, deals, activities, ...)."""
    row: Row
    action_id: str | None
    announcement: tuple[bytes, bytes] | None
    """Key and value of the StageChanged announcing the item the action creates."""


@dataclass
class Rows:
    """One batch of actions and executions, grouped by target table."""

    leads: list[Row] = field(default_factory=list)
    deals: list[Row] = field(default_factory=list)
    activities: list[Row] = field(default_factory=list)
    completions: list[Row] = field(default_factory=list)
    executions: list[Row] = field(default_factory=list)
    outbox: list[Row] = field(default_factory=list)
    announce_topic: str | None = None
    """Where created deals and leads are announced (crm.stage-changes); None: not at all."""

    def __len__(self) -> int:
        return sum(
            len(rows)
            for rows in (
                self.leads,
                self.deals,
                self.activities,
                self.completions,
                self.executions,
                self.outbox,
            )
        )

    def add_action(self, action: Action) -> None:
        p = action.payload
        if isinstance(p, CreateLead):
            self.leads.append(
                (
                    action.action_id,
                    action.rule_id,
                    p.lead_id,
                    action.item_key,
                    p.title,
                    p.responsible_id,
                    p.company.id if p.company else None,
                    [c.id for c in p.contacts],
                    p.is_repeat,
                    action.occurred_at,
                )
            )
        elif isinstance(p, CopyDeal):
            item = p.item
            self.deals.append(
                (
                    action.action_id,
                    action.rule_id,
                    p.deal_id,
                    p.source_item_key,
                    item.title,
                    p.pipeline_id,
                    p.stage_id,
                    item.responsible_id,
                    item.amount,
                    item.currency,
                    item.company.id if item.company else None,
                    [c.id for c in item.contacts],
                    Jsonb(item.fields),
                    p.copy_depth,
                    action.occurred_at,
                    item.begin_date,
                    item.close_date,
                    item.company.title if item.company else None,
                    Jsonb([asdict(c) for c in item.contacts]),
                )
            )
        elif isinstance(p, PlanActivity):
            self.activities.append(
                (
                    action.action_id,
                    action.rule_id,
                    p.activity_id,
                    action.item_key,
                    p.stage_id,
                    action.stage_entry_id,
                    p.subject,
                    p.description,
                    p.deadline,
                    p.duration_minutes,
                    p.responsible_id,
                    p.color,
                    p.add_to_calendar,
                    [c.id for c in p.clients],
                    list(p.invitee_ids),
                    p.address,
                    p.location_id,
                    p.link,
                    list(p.files),
                    p.complete_on_stage_exit,
                    action.occurred_at,
                    p.activity_type,
                )
            )
        elif isinstance(p, CompleteActivities):
            self.completions.append(
                (
                    action.action_id,
                    action.item_key,
                    p.stage_id,
                    action.stage_entry_id,
                    p.completed_at,
                )
            )

        if self.announce_topic is not None:
            event = announcement(action)
            if event is not None:
                self.outbox.append(
                    (action.action_id, self.announce_topic, event.key.encode(), codec.encode(event))
                )

    def add_read(self, read: ReadRows) -> None:
        getattr(self, read.table).append(read.row)
        if self.announce_topic is not None and read.announcement is not None:
            key, value = read.announcement
            self.outbox.append((read.action_id, self.announce_topic, key, value))

    def add_execution(self, execution: Execution) -> None:
        self.executions.append(
            (
                execution_key(execution),
                execution.action_id,
                execution.rule_id,
                execution.rule_version,
                execution.item_key,
                execution.event_id,
                execution.status.value,
                execution.due_at,
                execution.reason,
                execution.recorded_at,
            )
        )

    def extend_rows(self, other: Rows) -> None:
        """Add `other`'s rows (for metrics over several written batches)."""
        for name in ("leads", "deals", "activities", "completions", "executions", "outbox"):
            getattr(self, name).extend(getattr(other, name))

    def extend(self, actions: Iterable[Action], executions: Iterable[Execution]) -> None:
        for action in actions:
            self.add_action(action)
        for execution in executions:
            self.add_execution(execution)


def execution_key(execution: Execution) -> str:
    """The same execution record redelivered maps to the same key, so it is stored once."""
    return execution_key_of(
        execution.event_id,
        execution.rule_id,
        execution.status.value,
        execution.action_id,
        execution.due_at,
    )


def execution_key_of(
    event_id: str, rule_id: str, status: str, action_id: str | None, due_at: datetime | None
) -> str:
    """`execution_key` of an execution record's fields."""
    parts = (event_id, rule_id, status, action_id or "", due_at.isoformat() if due_at else "")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
