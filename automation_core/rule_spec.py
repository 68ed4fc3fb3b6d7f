"""Typed rule bodies: the condition, the timing and the action a rule runs.

Validation (`rules_file`) builds these from YAML; `canonical` writes them as the rule's
canonical dict and reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from automation_core.spec_fields import FLAG, NUMBER, PAIRS, TEXTS, TIME, Form, declare
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


ACTIVITY_TYPES = ("call", "meeting", "task", "email")


def _read_clients_mode(value: Any) -> ClientsMode:
    if not is_clients_mode(value):
        raise ValueError(f"clients {value!r}")
    return str(value)


def _read_activity_type(value: Any) -> str:
    if value not in ACTIVITY_TYPES:
        raise ValueError(f"activity_type {value!r}")
    return str(value)


CLIENTS_MODE = Form(read=_read_clients_mode)
ACTIVITY_TYPE = Form(read=_read_activity_type)


# An action's fields are declared once, here: `spec_fields` derives its canonical dict
# (the rule's version hashes it) and the rules file's keys from them. A field added to
# an action that rules are already published with needs `omit_default=True`, or every
# published rule gets a new version.


@dataclass(frozen=True)
class CreateLeadSpec:
    kind = "create_lead"

    title: str
    responsible: tuple[str, ...] = field(default=(), metadata=declare(form=TEXTS))
    pipeline_id: str | None = field(default=None, metadata=declare("pipeline"))
    stage_id: str | None = field(default=None, metadata=declare("stage"))


@dataclass(frozen=True)
class CopyDealSpec:
    kind = "copy_deal"

    target_pipeline: str
    target_stage: str
    title: str | None = None
    suffix: str = " (copy)"
    responsible: str | None = None


@dataclass(frozen=True)
class PlanActivitySpec:
    kind = "plan_activity"

    subject: str
    description: str = ""
    deadline: TimeSpec | None = field(default=None, metadata=declare(form=TIME))
    responsible: str | None = None
    color: str | None = None
    add_to_calendar: bool = field(default=False, metadata=declare(form=FLAG, yaml_key="calendar"))
    duration_minutes: int = field(default=30, metadata=declare(form=NUMBER, yaml_key="calendar"))
    clients: ClientsMode = field(default="none", metadata=declare(form=CLIENTS_MODE))
    invite: tuple[str, ...] = field(default=(), metadata=declare(form=TEXTS))
    address: str | None = None
    location: str | None = None
    link: str | None = None
    files: tuple[str, ...] = field(default=(), metadata=declare(form=TEXTS))
    complete_on_stage_exit: bool = field(default=False, metadata=declare(form=FLAG))
    activity_type: str = field(
        default="task",
        metadata=declare(form=ACTIVITY_TYPE, omit_default=True),
    )


@dataclass(frozen=True)
class WebhookSpec:
    kind = "webhook"

    url: str
    fields: tuple[tuple[str, str], ...] = field(default=(), metadata=declare(form=PAIRS))
    """(name, template) pairs, in the rule's order."""


ActionSpec = CreateLeadSpec | CopyDealSpec | PlanActivitySpec | WebhookSpec
ACTION_SPECS: tuple[type[ActionSpec], ...] = (
    CreateLeadSpec,
    CopyDealSpec,
    PlanActivitySpec,
    WebhookSpec,
)
"""Every action, in the order the rules file's messages name them."""


@dataclass(frozen=True)
class RuleSpec:
    action: ActionSpec
    condition: Condition | None = None
    when: TimeSpec | None = None
    cancel_on_stage_exit: bool = True
