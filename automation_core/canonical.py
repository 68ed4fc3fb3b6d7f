"""A rule's canonical dict (`Rule.spec`, `spec_json` on Kafka) and its version hash.

Validation (`rules_file`) writes it from the typed spec with `rule_to_spec`; the engine
reads it back with `rule_from_spec`. `rule_to_spec(rule_from_spec(r).spec) == r.spec`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from automation_core.compiled_rule import CompiledRule
from automation_core.model import Rule
from automation_core.rule_errors import InvalidRuleSpec
from automation_core.rule_spec import (
    ACTION_SPECS,
    ActionSpec,
    Comparison,
    Condition,
    RuleSpec,
)
from automation_core.spec_fields import from_dict, to_dict
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
        "action": action_to_dict(spec.action),
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


def action_to_dict(a: ActionSpec) -> dict[str, Any]:
    return {"type": a.kind, **to_dict(a)}


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
        action_from_dict(d["action"]), condition, when, bool(d.get("cancel_on_stage_exit", True))
    )


def _comparison_from_dict(c: dict[str, Any]) -> Comparison:
    value = c.get("value")
    if isinstance(value, list):
        value = tuple(str(v) for v in value)
    elif value is not None:
        value = str(value)
    return Comparison(str(c["field"]), str(c["op"]), value, c.get("type", "string"))


def action_from_dict(d: dict[str, Any]) -> ActionSpec:
    kind = d["type"]
    for spec in ACTION_SPECS:
        if spec.kind == kind:
            return from_dict(spec, d)
    raise ValueError(f"unknown action type {kind!r}")
