"""Avro dicts to domain records and back: the only place the two shapes meet."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from automation_core.canonical import canonical_json
from automation_core.model import (
    Action,
    ActionMode,
    CallWebhook,
    Client,
    Company,
    CompleteActivities,
    Contact,
    CopyDeal,
    CreateLead,
    EntityType,
    Execution,
    ExecutionStatus,
    Item,
    Payload,
    Pipeline,
    PlanActivity,
    Rule,
    StageChanged,
    TimerCommand,
    TimerCommandKind,
)
from runtime.codec.framing import NAMESPACE

AvroDict = dict[str, Any]


def _timestamp(value: datetime) -> datetime:
    # fastavro would read a naive datetime as UTC; in the domain that is always a bug.
    if value.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    return value


def _optional_timestamp(value: datetime | None) -> datetime | None:
    return None if value is None else _timestamp(value)


def _amount_to_avro(amount: Decimal | None) -> str | None:
    if amount is None:
        return None
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, got {amount}")
    return str(amount)


def _amount_from_avro(text: str | None) -> Decimal | None:
    if text is None:
        return None
    amount = Decimal(text)
    if not amount.is_finite():
        raise ValueError("amount is not a finite decimal")
    return amount


# -- building blocks -----------------------------------------------------------------


_COMPANY = f"{NAMESPACE}.Company"
_ACTION = f"{NAMESPACE}.Action"


def company_to_avro(company: Company | None) -> tuple[str, AvroDict] | None:
    # Always in a ["null", Company] union: fastavro's tuple notation names the branch, so
    # the writer does not validate the whole record against each branch first (same bytes).
    return None if company is None else (_COMPANY, {"id": company.id, "title": company.title})


def company_from_avro(d: AvroDict | None) -> Company | None:
    return None if d is None else Company(id=d["id"], title=d["title"])


def contact_to_avro(c: Contact) -> AvroDict:
    return {
        "id": c.id,
        "name": c.name,
        "last_name": c.last_name,
        "email": c.email,
        "phone": c.phone,
    }


def contact_from_avro(d: AvroDict) -> Contact:
    return Contact(
        id=d["id"], name=d["name"], last_name=d["last_name"], email=d["email"], phone=d["phone"]
    )


def item_to_avro(item: Item) -> AvroDict:
    return {
        "title": item.title,
        "responsible_id": item.responsible_id,
        "amount": _amount_to_avro(item.amount),
        "currency": item.currency,
        "company": company_to_avro(item.company),
        "contacts": [contact_to_avro(c) for c in item.contacts],
        "begin_date": item.begin_date,
        "close_date": item.close_date,
        "fields": {
            k: list(v) if isinstance(v, list | tuple) else v for k, v in item.fields.items()
        },
    }


def item_from_avro(d: AvroDict) -> Item:
    return Item(
        title=d["title"],
        responsible_id=d["responsible_id"],
        amount=_amount_from_avro(d["amount"]),
        currency=d["currency"],
        company=company_from_avro(d["company"]),
        contacts=tuple(contact_from_avro(c) for c in d["contacts"]),
        begin_date=d["begin_date"],
        close_date=d["close_date"],
        fields=d["fields"],
    )


# -- top-level records ---------------------------------------------------------------


def stage_changed_to_avro(e: StageChanged) -> AvroDict:
    return {
        "event_id": e.event_id,
        "occurred_at": _timestamp(e.occurred_at),
        "entity_type": e.entity_type.value,
        "item_id": e.item_id,
        "pipeline_id": e.pipeline_id,
        "stage_id": e.stage_id,
        "previous_stage_id": e.previous_stage_id,
        "item": item_to_avro(e.item),
        "created_by_automation": e.created_by_automation,
        "copy_depth": e.copy_depth,
        "source_item_key": e.source_item_key,
    }


def stage_changed_from_avro(d: AvroDict) -> StageChanged:
    return StageChanged(
        event_id=d["event_id"],
        occurred_at=d["occurred_at"],
        entity_type=EntityType(d["entity_type"]),
        item_id=d["item_id"],
        pipeline_id=d["pipeline_id"],
        stage_id=d["stage_id"],
        previous_stage_id=d["previous_stage_id"],
        item=item_from_avro(d["item"]),
        created_by_automation=d["created_by_automation"],
        copy_depth=d["copy_depth"],
        source_item_key=d["source_item_key"],
    )


def pipeline_to_avro(p: Pipeline) -> AvroDict:
    return {"id": p.id, "entity_type": p.entity_type.value, "stages": list(p.stages)}


def pipeline_from_avro(d: AvroDict) -> Pipeline:
    return Pipeline(id=d["id"], entity_type=EntityType(d["entity_type"]), stages=tuple(d["stages"]))


def rule_to_avro(r: Rule) -> AvroDict:
    return {
        "id": r.id,
        "version": r.version,
        "enabled": r.enabled,
        "entity_type": r.entity_type.value,
        "pipeline_id": r.pipeline_id,
        "stage_id": r.stage_id,
        "position": r.position,
        "after_previous": r.after_previous,
        "spec_json": canonical_json(r.spec),
    }


def rule_from_avro(d: AvroDict) -> Rule:
    spec = json.loads(d["spec_json"])
    if not isinstance(spec, dict):
        raise ValueError("spec_json is not a JSON object")
    return Rule(
        id=d["id"],
        version=d["version"],
        enabled=d["enabled"],
        entity_type=EntityType(d["entity_type"]),
        pipeline_id=d["pipeline_id"],
        stage_id=d["stage_id"],
        position=d["position"],
        after_previous=d["after_previous"],
        spec=spec,
    )


def _client_to_avro(c: Client) -> AvroDict:
    return {"id": c.id, "kind": c.kind, "name": c.name, "email": c.email}


def _client_from_avro(d: AvroDict) -> Client:
    return Client(id=d["id"], kind=d["kind"], name=d["name"], email=d["email"])


def _create_lead_to_avro(p: CreateLead) -> AvroDict:
    return {
        "lead_id": p.lead_id,
        "title": p.title,
        "responsible_id": p.responsible_id,
        "company": company_to_avro(p.company),
        "contacts": [contact_to_avro(c) for c in p.contacts],
        "is_repeat": p.is_repeat,
        "pipeline_id": p.pipeline_id,
        "stage_id": p.stage_id,
        "copy_depth": p.copy_depth,
    }


def _create_lead_from_avro(d: AvroDict) -> CreateLead:
    return CreateLead(
        lead_id=d["lead_id"],
        title=d["title"],
        responsible_id=d["responsible_id"],
        company=company_from_avro(d["company"]),
        contacts=tuple(contact_from_avro(c) for c in d["contacts"]),
        is_repeat=d["is_repeat"],
        pipeline_id=d["pipeline_id"],
        stage_id=d["stage_id"],
        copy_depth=d["copy_depth"],
    )


def _copy_deal_to_avro(p: CopyDeal) -> AvroDict:
    return {
        "deal_id": p.deal_id,
        "pipeline_id": p.pipeline_id,
        "stage_id": p.stage_id,
        "item": item_to_avro(p.item),
        "source_item_key": p.source_item_key,
        "copy_depth": p.copy_depth,
    }


def _copy_deal_from_avro(d: AvroDict) -> CopyDeal:
    return CopyDeal(
        deal_id=d["deal_id"],
        pipeline_id=d["pipeline_id"],
        stage_id=d["stage_id"],
        item=item_from_avro(d["item"]),
        source_item_key=d["source_item_key"],
        copy_depth=d["copy_depth"],
    )


def _plan_activity_to_avro(p: PlanActivity) -> AvroDict:
    return {
        "activity_id": p.activity_id,
        "subject": p.subject,
        "description": p.description,
        "deadline": _timestamp(p.deadline),
        "duration_minutes": p.duration_minutes,
        "responsible_id": p.responsible_id,
        "stage_id": p.stage_id,
        "color": p.color,
        "add_to_calendar": p.add_to_calendar,
        "clients": [_client_to_avro(c) for c in p.clients],
        "invitee_ids": list(p.invitee_ids),
        "address": p.address,
        "location_id": p.location_id,
        "link": p.link,
        "files": list(p.files),
        "complete_on_stage_exit": p.complete_on_stage_exit,
        "activity_type": p.activity_type,
    }


def _plan_activity_from_avro(d: AvroDict) -> PlanActivity:
    return PlanActivity(
        activity_id=d["activity_id"],
        subject=d["subject"],
        description=d["description"],
        deadline=d["deadline"],
        duration_minutes=d["duration_minutes"],
        responsible_id=d["responsible_id"],
        stage_id=d["stage_id"],
        color=d["color"],
        add_to_calendar=d["add_to_calendar"],
        clients=tuple(_client_from_avro(c) for c in d["clients"]),
        invitee_ids=tuple(d["invitee_ids"]),
        address=d["address"],
        location_id=d["location_id"],
        link=d["link"],
        files=tuple(d["files"]),
        complete_on_stage_exit=d["complete_on_stage_exit"],
        activity_type=d["activity_type"],
    )


def _complete_activities_to_avro(p: CompleteActivities) -> AvroDict:
    return {"stage_id": p.stage_id, "completed_at": _timestamp(p.completed_at)}


def _complete_activities_from_avro(d: AvroDict) -> CompleteActivities:
    return CompleteActivities(stage_id=d["stage_id"], completed_at=d["completed_at"])


def _webhook_to_avro(p: CallWebhook) -> AvroDict:
    return {
        "url": p.url,
        "pipeline_id": p.pipeline_id,
        "stage_id": p.stage_id,
        "item": item_to_avro(p.item),
        "fields": [{"name": n, "value": v} for n, v in p.fields],
    }


def _webhook_from_avro(d: AvroDict) -> CallWebhook:
    return CallWebhook(
        url=d["url"],
        pipeline_id=d["pipeline_id"],
        stage_id=d["stage_id"],
        item=item_from_avro(d["item"]),
        fields=tuple((f["name"], f["value"]) for f in d["fields"]),
    )


# The payload union is written with fastavro's (fullname, record) tuple notation, so the
# branch is explicit rather than guessed from the dict's keys.
PAYLOAD_TO_AVRO: dict[type, tuple[str, Callable[[Any], AvroDict]]] = {
    CreateLead: (f"{NAMESPACE}.CreateLead", _create_lead_to_avro),
    CopyDeal: (f"{NAMESPACE}.CopyDeal", _copy_deal_to_avro),
    PlanActivity: (f"{NAMESPACE}.PlanActivity", _plan_activity_to_avro),
    CompleteActivities: (f"{NAMESPACE}.CompleteActivities", _complete_activities_to_avro),
    CallWebhook: (f"{NAMESPACE}.Webhook", _webhook_to_avro),
}
PAYLOAD_FROM_AVRO: dict[str, Callable[[AvroDict], Payload]] = {
    f"{NAMESPACE}.CreateLead": _create_lead_from_avro,
    f"{NAMESPACE}.CopyDeal": _copy_deal_from_avro,
    f"{NAMESPACE}.PlanActivity": _plan_activity_from_avro,
    f"{NAMESPACE}.CompleteActivities": _complete_activities_from_avro,
    f"{NAMESPACE}.Webhook": _webhook_from_avro,
}


def action_to_avro(a: Action) -> AvroDict:
    branch, to_avro = PAYLOAD_TO_AVRO[type(a.payload)]
    return {
        "action_id": a.action_id,
        "rule_id": a.rule_id,
        "rule_version": a.rule_version,
        "item_key": a.item_key,
        "event_id": a.event_id,
        "stage_entry_id": a.stage_entry_id,
        "occurred_at": _timestamp(a.occurred_at),
        "mode": a.mode.value,
        "due_at": _optional_timestamp(a.due_at),
        "payload": (branch, to_avro(a.payload)),
    }


def action_from_avro(d: AvroDict) -> Action:
    branch, payload = d["payload"]
    return Action(
        action_id=d["action_id"],
        rule_id=d["rule_id"],
        rule_version=d["rule_version"],
        item_key=d["item_key"],
        event_id=d["event_id"],
        stage_entry_id=d["stage_entry_id"],
        occurred_at=d["occurred_at"],
        mode=ActionMode(d["mode"]),
        due_at=d["due_at"],
        payload=PAYLOAD_FROM_AVRO[branch](payload),
    )


def timer_command_to_avro(t: TimerCommand) -> AvroDict:
    return {
        "kind": t.kind.value,
        "issued_at": _timestamp(t.issued_at),
        "item_key": t.item_key,
        "stage_entry_id": t.stage_entry_id,
        "rule_id": t.rule_id,
        "due_at": _optional_timestamp(t.due_at),
        "rule_version": t.rule_version,
        # Tuple notation: the ["null", Action] branch without validating the Action first.
        "action": None if t.action is None else (_ACTION, action_to_avro(t.action)),
    }


def timer_command_from_avro(d: AvroDict) -> TimerCommand:
    return TimerCommand(
        kind=TimerCommandKind(d["kind"]),
        issued_at=d["issued_at"],
        item_key=d["item_key"],
        stage_entry_id=d["stage_entry_id"],
        rule_id=d["rule_id"],
        due_at=d["due_at"],
        action=None if d["action"] is None else action_from_avro(d["action"]),
        rule_version=d["rule_version"],
    )


def execution_to_avro(x: Execution) -> AvroDict:
    return {
        "rule_id": x.rule_id,
        "item_key": x.item_key,
        "event_id": x.event_id,
        "status": x.status.value,
        "recorded_at": _timestamp(x.recorded_at),
        "action_id": x.action_id,
        "rule_version": x.rule_version,
        "due_at": _optional_timestamp(x.due_at),
        "reason": x.reason,
    }


def execution_from_avro(d: AvroDict) -> Execution:
    return Execution(
        rule_id=d["rule_id"],
        item_key=d["item_key"],
        event_id=d["event_id"],
        status=ExecutionStatus(d["status"]),
        recorded_at=d["recorded_at"],
        action_id=d["action_id"],
        rule_version=d["rule_version"],
        due_at=d["due_at"],
        reason=d["reason"],
    )


TopLevel = StageChanged | Rule | Pipeline | TimerCommand | Action | Execution

# Domain type -> (schema name, to Avro); schema name -> from Avro.
TO_AVRO: dict[type, tuple[str, Callable[[Any], AvroDict]]] = {
    StageChanged: ("StageChanged", stage_changed_to_avro),
    Rule: ("Rule", rule_to_avro),
    Pipeline: ("Pipeline", pipeline_to_avro),
    TimerCommand: ("TimerCommand", timer_command_to_avro),
    Action: ("Action", action_to_avro),
    Execution: ("Execution", execution_to_avro),
}
FROM_AVRO: dict[str, Callable[[AvroDict], TopLevel]] = {
    "StageChanged": stage_changed_from_avro,
    "Rule": rule_from_avro,
    "Pipeline": pipeline_from_avro,
    "TimerCommand": timer_command_from_avro,
    "Action": action_from_avro,
    "Execution": execution_from_avro,
}
