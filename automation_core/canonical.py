"""A rule's canonical dict (`Rule.spec`, `spec_json` on Kafka) and its version hash.

Validation (`rules_file`) writes it from the typed spec with `rule_to_spec`; the engine
reads it back with `rule_from_spec`. `rule_to_spec(rule_from_spec(r).spec) == r.spec`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from automation_core.model import Rule
from automation_core.rule_errors import InvalidRuleSpec
from automation_core.rule_spec import (
    ACTIVITY_TYPES,
    ActionSpec,
    Comparison,
    CompiledRule,
    Condition,
    CopyDealSpec,
    CreateLeadSpec,
    PlanActivitySpec,
    RuleSpec,
    WebhookSpec,
    is_clients_mode,
)
from automation_core.time_spec import time_from_dict, time_to_dict


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is, no NaN: the form a rule's version hashes
    and its spec travels in (`Rule.spec_json`)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def rule_version(
    rule_id: str,
    entity_type: str,
    pipeline_id: str,
    stage_id: str,
    enabled: bool,
    position: int,
    after_previous: bool,
    spec: dict[str, Any],
) -> str:
    """A content hash over everything that defines the rule: changes whenever it changes."""
    content = canonical_json(
        [rule_id, entity_type, pipeline_id, stage_id, enabled, position, after_previous, spec]
    )
    return hashlib.sha256(content.encode()).hexdigest()[:16]


# -- typed → canonical dict ---------------------------------------------------------------


def rule_to_spec(spec: RuleSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "action": _action_to_dict(spec.action),
        "cancel_on_stage_exit": spec.cancel_on_stage_exit,
    }
    if spec.condition is not None:
        out["condition"] = {
            "any": [
                {"all": [_comparison_to_dict(c) for c in group]} for group in spec.condition.any_of
            ]
        }
    if spec.when is not None:
        out["when"] = time_to_dict(spec.when)
    return out


def _comparison_to_dict(c: Comparison) -> dict[str, Any]:
    value: Any = list(c.value) if isinstance(c.value, tuple) else c.value
    return {"field": c.field, "op": c.op, "value": value, "type": c.value_type}


def _action_to_dict(a: ActionSpec) -> dict[str, Any]:
    if isinstance(a, CreateLeadSpec):
        return {
            "type": "create_lead",
            "title": a.title,
            "responsible": list(a.responsible),
            "pipeline": a.pipeline_id,
            "stage": a.stage_id,
        }
    if isinstance(a, WebhookSpec):
        return {"type": "webhook", "url": a.url, "fields": [list(f) for f in a.fields]}
    if isinstance(a, CopyDealSpec):
        return {
            "type": "copy_deal",
            "title": a.title,
            "suffix": a.suffix,
            "target_pipeline": a.target_pipeline,
            "target_stage": a.target_stage,
            "responsible": a.responsible,
        }
    return {
        "type": "plan_activity",
        "subject": a.subject,
        "description": a.description,
        "deadline": None if a.deadline is None else time_to_dict(a.deadline),
        "responsible": a.responsible,
        "color": a.color,
        "add_to_calendar": a.add_to_calendar,
        "duration_minutes": a.duration_minutes,
        "clients": a.clients,
        "invite": list(a.invite),
        "address": a.address,
        "location": a.location,
        "link": a.link,
        "files": list(a.files),
        "complete_on_stage_exit": a.complete_on_stage_exit,
        # Only when set: rules written before the key existed keep their versions.
        **({} if a.activity_type == "task" else {"activity_type": a.activity_type}),
    }


# -- canonical dict → typed ---------------------------------------------------------------


def rule_from_spec(rule: Rule) -> CompiledRule:
    """Parse `rule.spec` (the canonical dict) into typed form; InvalidRuleSpec if it is not."""
    try:
        return CompiledRule(rule, spec_from_dict(rule.spec))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InvalidRuleSpec(f"rule {rule.id!r}: invalid spec: {exc!r}") from exc


def spec_from_dict(d: dict[str, Any]) -> RuleSpec:
    condition = None
    if d.get("condition") is not None:
        condition = Condition(
            tuple(
                tuple(_comparison_from_dict(c) for c in group["all"])
                for group in d["condition"]["any"]
            )
        )
    when = None if d.get("when") is None else time_from_dict(d["when"])
    return RuleSpec(
        _action_from_dict(d["action"]), condition, when, bool(d.get("cancel_on_stage_exit", True))
    )


def _comparison_from_dict(c: dict[str, Any]) -> Comparison:
    value = c.get("value")
    if isinstance(value, list):
        value = tuple(str(v) for v in value)
    elif value is not None:
        value = str(value)
    return Comparison(str(c["field"]), str(c["op"]), value, c.get("type", "string"))


def _action_from_dict(d: dict[str, Any]) -> ActionSpec:
    kind = d["type"]
    if kind == "create_lead":
        return CreateLeadSpec(
            d["title"], tuple(d.get("responsible") or ()), d.get("pipeline"), d.get("stage")
        )
    if kind == "copy_deal":
        return CopyDealSpec(
            d["target_pipeline"],
            d["target_stage"],
            d.get("title"),
            d.get("suffix", " (copy)"),
            d.get("responsible"),
        )
    if kind == "webhook":
        return WebhookSpec(d["url"], tuple((str(n), str(v)) for n, v in d.get("fields") or ()))
    if kind == "plan_activity":
        clients = d.get("clients", "none")
        if not is_clients_mode(clients):
            raise ValueError(f"clients {clients!r}")
        return PlanActivitySpec(
            subject=d["subject"],
            description=d.get("description", ""),
            deadline=None if d.get("deadline") is None else time_from_dict(d["deadline"]),
            responsible=d.get("responsible"),
            color=d.get("color"),
            add_to_calendar=bool(d.get("add_to_calendar", False)),
            duration_minutes=int(d.get("duration_minutes", 30)),
            clients=clients,
            invite=tuple(d.get("invite") or ()),
            address=d.get("address"),
            location=d.get("location"),
            link=d.get("link"),
            files=tuple(d.get("files") or ()),
            complete_on_stage_exit=bool(d.get("complete_on_stage_exit", False)),
            activity_type=_activity_type(d.get("activity_type", "task")),
        )
    raise ValueError(f"unknown action type {kind!r}")


def _activity_type(value: Any) -> str:
    if value not in ACTIVITY_TYPES:
        raise ValueError(f"activity_type {value!r}")
    return str(value)
