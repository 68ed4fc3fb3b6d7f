"""Typed rule bodies: the condition, the timing and the action a rule runs.

Validation (`rules_file`) builds these from YAML; `canonical` writes them as the rule's
canonical dict and reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from automation_core.model import Rule
from automation_core.time_spec import TimeSpec

ClientsMode = str
"""`none`, `first`, `all` (every contact and the company), or `contact:N` (the item's
N-th contact, from 1)."""


def is_clients_mode(value: Any) -> bool:
    if value in ("none", "first", "all"):
        return True
    if isinstance(value, str) and value.startswith("contact:"):
        position = value.removeprefix("contact:")
        return position.isascii() and position.isdigit() and 1 <= int(position) <= 100
    return False


ValueType = Literal["string", "decimal", "date"]


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: str | tuple[str, ...] | None
    value_type: ValueType = "string"


@dataclass(frozen=True)
class Condition:
    """OR of AND-groups of comparisons."""

    any_of: tuple[tuple[Comparison, ...], ...]


@dataclass(frozen=True)
class CreateLeadSpec:
    title: str
    responsible: tuple[str, ...] = ()
    pipeline_id: str | None = None
    stage_id: str | None = None


@dataclass(frozen=True)
class CopyDealSpec:
    target_pipeline: str
    target_stage: str
    title: str | None = None
    suffix: str = " (copy)"
    responsible: str | None = None


@dataclass(frozen=True)
class PlanActivitySpec:
    subject: str
    description: str = ""
    deadline: TimeSpec | None = None
    responsible: str | None = None
    color: str | None = None
    add_to_calendar: bool = False
    duration_minutes: int = 30
    clients: ClientsMode = "none"
    invite: tuple[str, ...] = ()
    address: str | None = None
    location: str | None = None
    link: str | None = None
    files: tuple[str, ...] = ()
    complete_on_stage_exit: bool = False
    activity_type: str = "task"


ACTIVITY_TYPES = ("call", "meeting", "task", "email")


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    fields: tuple[tuple[str, str], ...] = ()
    """(name, template) pairs, in the rule's order."""


ActionSpec = CreateLeadSpec | CopyDealSpec | PlanActivitySpec | WebhookSpec


@dataclass(frozen=True)
class RuleSpec:
    action: ActionSpec
    condition: Condition | None = None
    when: TimeSpec | None = None
    cancel_on_stage_exit: bool = True


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its spec parsed once, ready for evaluation."""

    rule: Rule
    spec: RuleSpec
