"""Typed rule bodies and their canonical JSON form (`Rule.spec`, `spec_json` on Kafka).

Validation (`rules_file`) builds these from YAML; the engine rebuilds them from
`Rule.spec` with `rule_from_spec`. `rule_to_spec(rule_from_spec(r).spec) == r.spec`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal

from automation_core.model import Rule
from automation_core.rule_errors import InvalidRuleSpec

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
class WorkingCalendar:
    """Working days (0 = Monday), hour ranges and public holidays, in one time zone."""

    name: str
    timezone: str
    days: tuple[int, ...]
    hours: tuple[tuple[time, time], ...]
    holidays: str | None = None
    """Country code for the `holidays` library, optionally with subdivision: `DE`, `DE-BY`."""
    days_off: frozenset[date] = frozenset()
    """The company's own days off (a closing day, the days between the holidays)."""
    extra_working_days: frozenset[date] = frozenset()
    """Dates worked although the week or the holidays say otherwise (a Saturday event)."""


@dataclass(frozen=True)
class TimeSpec:
    """When something happens, relative to a base moment (the event, or the rule's run).

    Either a delay after the base (`delay_months` calendar months, wall clock kept, then
    `delay_seconds`; with `at`, the whole days of `delay_seconds` count calendar days in
    the zone), or `field` (a date of the item) plus `offset_seconds`, or `absolute`; then
    optionally `at` a time of day in `timezone`, then optionally moved into `working_time`.
    """

    delay_seconds: int = 0
    delay_months: int = 0
    field: str | None = None
    offset_seconds: int = 0
    at: time | None = None
    timezone: str | None = None
    absolute: datetime | None = None
    working_time: WorkingCalendar | None = None


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


def time_to_dict(t: TimeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.absolute is not None:
        out["datetime"] = t.absolute.isoformat()
    elif t.field is not None:
        out["field"] = t.field
        out["offset_seconds"] = t.offset_seconds
    else:
        out["delay_seconds"] = t.delay_seconds
        if t.delay_months:
            out["delay_months"] = t.delay_months
    if t.at is not None:
        out["at"] = t.at.strftime("%H:%M")
    if t.timezone is not None:
        out["timezone"] = t.timezone
    if t.working_time is not None:
        out["working_time"] = calendar_to_dict(t.working_time)
    return out


def calendar_to_dict(c: WorkingCalendar) -> dict[str, Any]:
    return {
        "name": c.name,
        "timezone": c.timezone,
        "days": [WEEKDAYS[d] for d in c.days],
        "hours": [f"{a.strftime('%H:%M')}-{b.strftime('%H:%M')}" for a, b in c.hours],
        "holidays": c.holidays,
        **({"days_off": sorted(d.isoformat() for d in c.days_off)} if c.days_off else {}),
        **(
            {"extra_working_days": sorted(d.isoformat() for d in c.extra_working_days)}
            if c.extra_working_days
            else {}
        ),
    }


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


def time_from_dict(d: dict[str, Any]) -> TimeSpec:
    at = None if d.get("at") is None else time.fromisoformat(d["at"])
    calendar = None if d.get("working_time") is None else calendar_from_dict(d["working_time"])
    absolute = None if d.get("datetime") is None else datetime.fromisoformat(d["datetime"])
    if absolute is not None and absolute.tzinfo is None:
        raise ValueError("absolute datetime without UTC offset")
    return TimeSpec(
        delay_seconds=int(d.get("delay_seconds", 0)),
        delay_months=int(d.get("delay_months", 0)),
        field=d.get("field"),
        offset_seconds=int(d.get("offset_seconds", 0)),
        at=at,
        timezone=d.get("timezone"),
        absolute=absolute,
        working_time=calendar,
    )


def calendar_from_dict(d: dict[str, Any]) -> WorkingCalendar:
    hours = []
    for span in d["hours"]:
        start, end = span.split("-")
        hours.append((time.fromisoformat(start), time.fromisoformat(end)))
    return WorkingCalendar(
        str(d["name"]),
        str(d["timezone"]),
        tuple(WEEKDAYS.index(day) for day in d["days"]),
        tuple(hours),
        d.get("holidays"),
        frozenset(date.fromisoformat(day) for day in d.get("days_off", ())),
        frozenset(date.fromisoformat(day) for day in d.get("extra_working_days", ())),
    )


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
