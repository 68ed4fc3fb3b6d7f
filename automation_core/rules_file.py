"""Rules files (YAML) → validated Pipelines and Rules, with every problem reported.

`validate_rules_file(text)` either returns `ValidatedRules` or raises `RulesInvalid`
listing all problems, each with its path, e.g.
`rules[2] (call-client).action.deadline.timezone: unknown time zone 'Europe/Berln'`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from automation_core import webhook
from automation_core.colors import COLORS, HEX_COLOR
from automation_core.conditions import OPS, VALUELESS_OPS, typed
from automation_core.durations import parse_delay, parse_duration, parse_time_of_day
from automation_core.fields import DATE_FIELDS, canonical_field, field_type, is_custom
from automation_core.links import url_problem
from automation_core.model import EntityType, Pipeline, Rule
from automation_core.rule_errors import Problem, RulesInvalid
from automation_core.rule_spec import (
    ACTIVITY_TYPES,
    WEEKDAYS,
    ActionSpec,
    ClientsMode,
    Comparison,
    Condition,
    CopyDealSpec,
    CreateLeadSpec,
    PlanActivitySpec,
    RuleSpec,
    TimeSpec,
    ValueType,
    WebhookSpec,
    WorkingCalendar,
    is_clients_mode,
    rule_to_spec,
    rule_version,
)
from automation_core.templates import MAX_TEMPLATE_CHARS, fill_placeholders, template_problems
from automation_core.timing import known_holiday_code
from automation_core.yaml_loader import line_numbers, load_yaml

MAX_RULES = 10_000
MAX_FILE_CHARS = 5_000_000
MAX_INVITEES = 50
MAX_FILES = 20
MAX_IN_VALUES = 1000
MAX_ACTIVITY_MINUTES = 7 * 24 * 60
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TOP_KEYS = {"pipelines", "working_time", "rules"}
_RULE_KEYS = {
    "id",
    "trigger",
    "condition",
    "when",
    "position",
    "after_previous",
    "enabled",
    "cancel_on_stage_exit",
    "action",
}
_TIME_KEYS = {"delay", "at", "timezone", "field", "offset", "working_time", "datetime"}
_ACTION_KEYS = {
    "create_lead": {"type", "title", "responsible", "pipeline", "stage"},
    "copy_deal": {"type", "title", "suffix", "target_pipeline", "target_stage", "responsible"},
    "plan_activity": {
        "type",
        "subject",
        "description",
        "deadline",
        "responsible",
        "color",
        "calendar",
        "clients",
        "invite",
        "address",
        "location",
        "link",
        "files",
        "complete_on_stage_exit",
        "activity_type",
    },
    "webhook": webhook.KEYS,
}


@dataclass(frozen=True)
class ValidatedRules:
    """A rules file that passed validation: pipelines, calendars and rules, in file order."""

    pipelines: tuple[Pipeline, ...]
    calendars: Mapping[str, WorkingCalendar]
    rules: tuple[Rule, ...]


def validate_rules_file(text: str) -> ValidatedRules:
    """Parse and validate a rules file; RulesInvalid lists every problem found."""
    if len(text) > MAX_FILE_CHARS:
        raise RulesInvalid([Problem("", f"file larger than {MAX_FILE_CHARS} characters")])
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise RulesInvalid([Problem("", f"not valid YAML: {exc}")]) from None
    try:
        return validate_rules_data(data)
    except RulesInvalid as exc:
        lines = line_numbers(text)
        raise RulesInvalid([_located(p, lines) for p in exc.problems]) from None


def _located(problem: Problem, lines: Mapping[str, int]) -> Problem:
    """`problem` with the line of the deepest part of its path the file has."""
    path = re.sub(r" \([^)]*\)", "", problem.path)
    while path in lines or (parent := re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)) != path:
        if path in lines:
            return dataclasses.replace(problem, line=lines[path])
        path = parent
    return problem


def validate_rules_data(data: Any) -> ValidatedRules:
    """Validate an already parsed rules document (a mapping)."""
    checker = _Checker()
    result = checker.document(data)
    if checker.problems or result is None:
        raise RulesInvalid(checker.problems or [Problem("", "empty rules file")])
    return result


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.pipelines: dict[str, Pipeline] = {}
        self.calendars: dict[str, WorkingCalendar] = {}

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- generic shapes ---------------------------------------------------------------

    def mapping(
        self, value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(_join(path, str(key)), f"unknown key{suffix}")
        for key in required:
            if key not in value or value[key] is None:
                self.add(_join(path, key), "required")
        return value

    def text(
        self, value: Any, path: str, *, template: bool = False, allow_empty: bool = False
    ) -> str | None:
        if value is None:
            return None  # a missing required key is reported once, by `mapping`
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            self.add(path, f"expected a non-empty string, got {_kind(value)}")
            return None
        if template:
            for problem in template_problems(value):
                self.add(path, problem)
        elif len(value) > MAX_TEMPLATE_CHARS:
            self.add(path, f"longer than {MAX_TEMPLATE_CHARS} characters")
        return value

    def identifier(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
            self.add(path, f"expected an id (letters, digits, . _ : -; at most 128), got {value!r}")
            return None
        return value

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {value!r}")
            return default
        return value

    def zone(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"expected a time zone name, got {_kind(value)}")
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.add(path, f"unknown time zone {value!r}")
            return None
        return value

    def delay(self, value: Any, path: str) -> tuple[int, int] | None:
        """(months, seconds) of a `delay`, which may use calendar months (`6mo`)."""
        if not isinstance(value, str):
            self.add(path, f"expected a duration like '10m' or '6mo', got {value!r}")
            return None
        try:
            months, seconds = parse_delay(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return None
        if months < 0 or seconds < 0:
            self.add(path, "must not be negative")
            return None
        return months, seconds

    def duration(self, value: Any, path: str, *, allow_negative: bool = False) -> int | None:
        if not isinstance(value, str):
            self.add(path, f"expected a duration like '10m', got {value!r}")
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return None
        if seconds < 0 and not allow_negative:
            self.add(path, "must not be negative")
            return None
        return seconds

    # -- document ---------------------------------------------------------------------

    def document(self, data: Any) -> ValidatedRules | None:
        doc = self.mapping(data, "", _TOP_KEYS)
        if doc is None:
            return None
        pipelines = doc.get("pipelines") or []
        if not isinstance(pipelines, list):
            self.add("pipelines", "expected a list")
            pipelines = []
        for i, raw in enumerate(pipelines):
            self.pipeline(raw, f"pipelines[{i}]")
        calendars = doc.get("working_time") or {}
        if not isinstance(calendars, dict):
            self.add("working_time", "expected a mapping of calendar name → calendar")
            calendars = {}
        for name, raw in calendars.items():
            self.calendar(str(name), raw, f"working_time.{name}")
        raw_rules = doc.get("rules") or []
        if not isinstance(raw_rules, list):
            self.add("rules", "expected a list")
            raw_rules = []
        if len(raw_rules) > MAX_RULES:
            self.add("rules", f"{len(raw_rules)} rules; at most {MAX_RULES} are allowed")
            return None
        rules: list[Rule] = []
        first_seen: dict[str, int] = {}
        for i, raw in enumerate(raw_rules):
            rule_id = raw.get("id") if isinstance(raw, dict) else None
            path = f"rules[{i}] ({rule_id})" if isinstance(rule_id, str) else f"rules[{i}]"
            if isinstance(rule_id, str) and rule_id in first_seen:
                self.add(
                    _join(path, "id"), f"duplicate rule id (first at rules[{first_seen[rule_id]}])"
                )
            elif isinstance(rule_id, str):
                first_seen[rule_id] = i
            rule = self.rule(raw, path, i)
            if rule is not None:
                rules.append(rule)
        return ValidatedRules(tuple(self.pipelines.values()), dict(self.calendars), tuple(rules))

    def pipeline(self, raw: Any, path: str) -> None:
        p = self.mapping(
            raw, path, {"id", "entity_type", "stages"}, ("id", "entity_type", "stages")
        )
        if p is None:
            return
        pid = self.identifier(p.get("id"), _join(path, "id"))
        entity = self.entity_type(p.get("entity_type"), _join(path, "entity_type"))
        stages = p.get("stages")
        ok = True
        if not isinstance(stages, list) or not stages:
            self.add(_join(path, "stages"), "expected a non-empty list of stage ids")
            return
        for j, stage in enumerate(stages):
            ok = self.identifier(stage, f"{path}.stages[{j}]") is not None and ok
        if len(set(map(str, stages))) != len(stages):
            self.add(_join(path, "stages"), "duplicate stage id")
            ok = False
        if pid is not None and pid in self.pipelines:
            self.add(_join(path, "id"), f"duplicate pipeline id {pid!r}")
        elif pid is not None and entity is not None and ok:
            self.pipelines[pid] = Pipeline(pid, entity, tuple(stages))

    def entity_type(self, value: Any, path: str) -> EntityType | None:
        try:
            return EntityType(value)
        except ValueError:
            self.add(
                path, f"expected one of {', '.join(e.value for e in EntityType)}, got {value!r}"
            )
            return None

    def calendar(self, name: str, raw: Any, path: str) -> None:
        keys = {"timezone", "days", "hours", "holidays", "days_off", "extra_working_days"}
        c = self.mapping(raw, path, keys, ("timezone",))
        if c is None:
            return
        if not ID_PATTERN.fullmatch(name):
            self.add(path, f"bad calendar name {name!r}")
        zone = self.zone(c.get("timezone"), _join(path, "timezone"))
        days_raw = c.get("days", ["mon", "tue", "wed", "thu", "fri"])
        days: list[int] = []
        if not isinstance(days_raw, list) or not days_raw:
            self.add(_join(path, "days"), "expected a non-empty list like [mon, tue]")
        else:
            for j, day in enumerate(days_raw):
                if day not in WEEKDAYS:
                    self.add(f"{path}.days[{j}]", f"unknown day {day!r} (mon … sun)")
                elif WEEKDAYS.index(day) not in days:
                    days.append(WEEKDAYS.index(day))
        hours = self.hours(c.get("hours", "09:00-18:00"), _join(path, "hours"))
        holidays_code = c.get("holidays")
        if holidays_code is not None:
            if not isinstance(holidays_code, str) or not known_holiday_code(holidays_code):
                self.add(
                    _join(path, "holidays"),
                    f"unknown holiday country {holidays_code!r} (e.g. DE, DE-BY, AT)",
                )
                holidays_code = None
        days_off = self.dates(c.get("days_off", []), _join(path, "days_off"))
        extra = self.dates(c.get("extra_working_days", []), _join(path, "extra_working_days"))
        for both in sorted(days_off & extra):
            self.add(path, f"{both.isoformat()} is both a day off and an extra working day")
        if zone is not None and hours is not None and days:
            self.calendars[name] = WorkingCalendar(
                name, zone, tuple(sorted(days)), hours, holidays_code, days_off, extra
            )

    def dates(self, raw: Any, path: str) -> frozenset[date]:
        """A list of ISO dates (`2026-12-24`)."""
        if not isinstance(raw, list):
            self.add(path, "expected a list of dates like [2026-12-24, 2026-12-31]")
            return frozenset()
        found: set[date] = set()
        for j, value in enumerate(raw):
            try:
                found.add(date.fromisoformat(str(value)))
            except ValueError:
                self.add(f"{path}[{j}]", f"expected a date like 2026-12-24, got {value!r}")
        return frozenset(found)

    def hours(self, raw: Any, path: str) -> tuple[tuple[time, time], ...] | None:
        spans = [raw] if isinstance(raw, str) else raw
        if not isinstance(spans, list) or not spans:
            self.add(path, "expected 'HH:MM-HH:MM' or a list of them")
            return None
        out: list[tuple[time, time]] = []
        for span in spans:
            try:
                start_text, end_text = str(span).split("-")
                start, end = parse_time_of_day(start_text), parse_time_of_day(end_text)
            except ValueError:
                self.add(path, f"bad hours {span!r} (expected 'HH:MM-HH:MM')")
                return None
            if start >= end:
                self.add(path, f"hours {span!r} end before they start")
                return None
            if out and start < out[-1][1]:
                self.add(path, f"hours {span!r} overlap or are not in order")
                return None
            out.append((start, end))
        return tuple(out)

    # -- rules ------------------------------------------------------------------------

    def rule(self, raw: Any, path: str, index: int) -> Rule | None:
        r = self.mapping(raw, path, _RULE_KEYS, ("id", "trigger", "action"))
        if r is None:
            return None
        before = len(self.problems)
        rule_id = self.identifier(r.get("id"), _join(path, "id"))
        trigger = self.trigger(r.get("trigger"), _join(path, "trigger"))
        condition = None
        if r.get("condition") is not None:
            condition = self.condition(r["condition"], _join(path, "condition"))
        when = None
        if r.get("when") is not None:
            when = self.time_spec(r["when"], _join(path, "when"))
        position = r.get("position", index)
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            self.add(_join(path, "position"), f"expected a non-negative integer, got {position!r}")
        after_previous = self.boolean(r.get("after_previous"), _join(path, "after_previous"), False)
        enabled = self.boolean(r.get("enabled"), _join(path, "enabled"), True)
        cancel = self.boolean(
            r.get("cancel_on_stage_exit"), _join(path, "cancel_on_stage_exit"), True
        )
        action = None
        if r.get("action") is not None:
            action = self.action(
                r["action"], _join(path, "action"), trigger[0] if trigger else None
            )
        if len(self.problems) > before or rule_id is None or trigger is None or action is None:
            return None
        spec = rule_to_spec(RuleSpec(action, condition, when, cancel))
        entity, pipeline_id, stage_id = trigger
        return Rule(
            id=rule_id,
            version=rule_version(
                rule_id,
                entity.value,
                pipeline_id,
                stage_id,
                enabled,
                position,
                after_previous,
                spec,
            ),
            entity_type=entity,
            pipeline_id=pipeline_id,
            stage_id=stage_id,
            spec=spec,
            enabled=enabled,
            position=position,
            after_previous=after_previous,
        )

    def trigger(self, raw: Any, path: str) -> tuple[EntityType, str, str] | None:
        t = self.mapping(
            raw, path, {"entity_type", "pipeline", "stage"}, ("entity_type", "pipeline", "stage")
        )
        if t is None:
            return None
        entity = self.entity_type(t.get("entity_type"), _join(path, "entity_type"))
        pipeline = self.known_pipeline(t.get("pipeline"), _join(path, "pipeline"))
        stage = t.get("stage")
        if pipeline is None or entity is None:
            return None
        if pipeline.entity_type is not entity:
            self.add(
                _join(path, "pipeline"),
                f"pipeline {pipeline.id!r} holds "
                f"{pipeline.entity_type.value} items, not {entity.value}",
            )
            return None
        if stage not in pipeline.stages:
            self.add(
                _join(path, "stage"),
                f"unknown stage {stage!r} in pipeline "
                f"{pipeline.id!r} (stages: {', '.join(pipeline.stages)})",
            )
            return None
        return entity, pipeline.id, str(stage)

    def known_pipeline(self, value: Any, path: str) -> Pipeline | None:
        if value is None:
            self.add(path, "required")
            return None
        pipeline = self.pipelines.get(str(value))
        if pipeline is None:
            known = ", ".join(self.pipelines) or "none defined"
            self.add(path, f"unknown pipeline {value!r} (pipelines: {known})")
        return pipeline

    def condition(self, raw: Any, path: str) -> Condition | None:
        if isinstance(raw, dict) and set(raw) == {"all"}:
            raw = {"any": [raw]}
        c = self.mapping(raw, path, {"any"}, ("any",))
        if c is None or not isinstance(c.get("any"), list) or not c["any"]:
            if c is not None:
                self.add(_join(path, "any"), "expected a non-empty list of {all: [...]} groups")
            return None
        groups: list[tuple[Comparison, ...]] = []
        for g, raw_group in enumerate(c["any"]):
            gpath = f"{path}.any[{g}]"
            group = self.mapping(raw_group, gpath, {"all"}, ("all",))
            if group is None:
                continue
            items = group.get("all")
            if not isinstance(items, list) or not items:
                self.add(_join(gpath, "all"), "expected a non-empty list of comparisons")
                continue
            parsed = [self.comparison(item, f"{gpath}.all[{k}]") for k, item in enumerate(items)]
            groups.append(tuple(p for p in parsed if p is not None))
        return Condition(tuple(groups))

    def comparison(self, raw: Any, path: str) -> Comparison | None:
        c = self.mapping(raw, path, {"field", "op", "value", "type"}, ("field", "op"))
        if c is None:
            return None
        field = canonical_field(str(c.get("field", "")))
        op = c.get("op")
        if field is None:
            self.add(_join(path, "field"), f"unknown field {c.get('field')!r}")
        if op not in OPS:
            self.add(_join(path, "op"), f"unknown op {op!r} (one of {', '.join(sorted(OPS))})")
        if field is None or op not in OPS:
            return None
        value = c.get("value")
        if op in VALUELESS_OPS:
            if value is not None:
                self.add(_join(path, "value"), f"op {op!r} takes no value")
            return Comparison(field, str(op), None, "string")
        value_type = self.value_type(field, c, str(op), path)
        if value_type is None:
            return None
        if op == "in":
            if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
                self.add(
                    _join(path, "value"), f"op 'in' needs a list of 1 to {MAX_IN_VALUES} values"
                )
                return None
            texts = [self.scalar(v, value_type, f"{path}.value[{k}]") for k, v in enumerate(value)]
            if any(t is None for t in texts):
                return None
            return Comparison(field, "in", tuple(t for t in texts if t is not None), value_type)
        text = self.scalar(value, value_type, _join(path, "value"))
        return None if text is None else Comparison(field, str(op), text, value_type)

    def value_type(self, field: str, c: dict[str, Any], op: str, path: str) -> ValueType | None:
        declared = c.get("type")
        kind = field_type(field)
        if declared is not None:
            if declared not in ("string", "decimal", "date"):
                self.add(_join(path, "type"), f"expected string, decimal or date, got {declared!r}")
                return None
            if kind in ("decimal", "date") and declared != kind:
                self.add(_join(path, "type"), f"{field} is a {kind} field")
                return None
            return declared  # type: ignore[no-any-return]
        if op == "contains":
            return "string"
        if kind in ("decimal", "date"):
            return kind
        value = c.get("value")
        sample = value[0] if isinstance(value, list) and value else value
        if is_custom(field) and isinstance(sample, int | float) and not isinstance(sample, bool):
            return "decimal"
        return "string"

    def scalar(self, value: Any, value_type: ValueType, path: str) -> str | None:
        if value is None or isinstance(value, bool | dict | list):
            self.add(path, f"expected a {value_type} value, got {_kind(value)}")
            return None
        text = str(value)
        try:
            typed(text, value_type)
        except ValueError:
            self.add(path, f"{text!r} is not a {value_type}")
            return None
        return text

    def time_spec(self, raw: Any, path: str) -> TimeSpec | None:
        t = self.mapping(raw, path, _TIME_KEYS)
        if t is None:
            return None
        bases = [k for k in ("delay", "field", "datetime") if k in t]
        if len(bases) > 1:
            self.add(path, f"use only one of delay, field, datetime (got {', '.join(bases)})")
            return None
        parsed = (0, 0) if "delay" not in t else self.delay(t["delay"], _join(path, "delay"))
        months, delay = parsed if parsed is not None else (0, None)
        offset = 0
        field = None
        absolute = None
        if "field" in t:
            field = canonical_field(str(t["field"]))
            if field is None or not (field in DATE_FIELDS or is_custom(field)):
                self.add(
                    _join(path, "field"),
                    f"{t['field']!r} is not a date field "
                    "(begin_date, close_date or a UF_ custom field)",
                )
                field = None
            if "offset" in t:
                offset = self.duration(t["offset"], _join(path, "offset"), allow_negative=True) or 0
        elif "offset" in t:
            self.add(_join(path, "offset"), "offset needs a date field ('field')")
        if "datetime" in t:
            try:
                absolute = datetime.fromisoformat(str(t["datetime"]))
            except ValueError:
                absolute = None
            if absolute is None or absolute.tzinfo is None:
                self.add(
                    _join(path, "datetime"),
                    "expected an ISO date-time with UTC offset, e.g. 2026-12-01T10:00:00+01:00",
                )
        at = None
        if "at" in t:
            try:
                at = parse_time_of_day(str(t["at"]))
            except ValueError as exc:
                self.add(_join(path, "at"), str(exc))
        zone = None if "timezone" not in t else self.zone(t["timezone"], _join(path, "timezone"))
        calendar = None
        if "working_time" in t:
            calendar = self.calendars.get(str(t["working_time"]))
            if calendar is None:
                known = ", ".join(self.calendars) or "none defined"
                self.add(
                    _join(path, "working_time"),
                    f"unknown working-time calendar {t['working_time']!r} (calendars: {known})",
                )
        needs_zone = at is not None or field is not None
        if needs_zone and "timezone" not in t and "working_time" not in t:
            self.add(
                path,
                "'at' and 'field' need a 'timezone' (or a 'working_time' calendar "
                "whose zone is used)",
            )
        if delay is None:
            return None
        return TimeSpec(
            delay_seconds=delay,
            delay_months=months,
            field=field,
            offset_seconds=offset,
            at=at,
            timezone=zone,
            absolute=absolute,
            working_time=calendar,
        )

    # -- actions ----------------------------------------------------------------------

    def action(self, raw: Any, path: str, entity: EntityType | None) -> ActionSpec | None:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in _ACTION_KEYS:
            if isinstance(raw, dict):
                self.add(
                    _join(path, "type"),
                    f"unknown action type {kind!r} (one of {', '.join(_ACTION_KEYS)})",
                )
            else:
                self.add(path, f"expected a mapping, got {_kind(raw)}")
            return None
        if kind == "create_lead":
            return self.create_lead(raw, path)
        if kind == "copy_deal":
            return self.copy_deal(raw, path, entity)
        if kind == "webhook":
            return self.webhook(raw, path)
        return self.plan_activity(raw, path)

    def webhook(self, raw: Any, path: str) -> WebhookSpec | None:
        a = self.mapping(raw, path, webhook.KEYS, ("url",))
        if a is None:
            return None
        url = self.text(a.get("url"), _join(path, "url"))
        if url is not None and (problem := webhook.url_problem_of(url)) is not None:
            self.add(_join(path, "url"), problem)
            url = None
        fields: list[tuple[str, str]] = []
        raw_fields, fields_path = a.get("fields"), _join(path, "fields")
        if raw_fields is not None and not isinstance(raw_fields, dict):
            self.add(
                fields_path, f"expected a mapping of names to templates, got {_kind(raw_fields)}"
            )
        elif raw_fields is not None and len(raw_fields) > webhook.MAX_FIELDS:
            self.add(fields_path, f"at most {webhook.MAX_FIELDS} fields")
        elif raw_fields is not None:
            for name, template in raw_fields.items():
                field_path = _join(fields_path, str(name))
                if (problem := webhook.field_name_problem(name)) is not None:
                    self.add(field_path, problem)
                    continue
                text = self.text(template, field_path, template=True, allow_empty=True)
                if text is not None:
                    fields.append((name, text))
        return None if url is None else WebhookSpec(url, tuple(fields))

    def responsibles(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        values = raw if isinstance(raw, list) else [raw]
        out = [
            self.text(v, f"{path}[{k}]" if isinstance(raw, list) else path, template=True)
            for k, v in enumerate(values)
        ]
        return tuple(v for v in out if v is not None)

    def create_lead(self, raw: Any, path: str) -> CreateLeadSpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["create_lead"], ("title",))
        if a is None:
            return None
        title = self.text(a.get("title"), _join(path, "title"), template=True)
        responsible = self.responsibles(a.get("responsible"), _join(path, "responsible"))
        lead_pipeline = None
        if a.get("pipeline") is not None:
            lead_pipeline = self.known_pipeline(a["pipeline"], _join(path, "pipeline"))
            if lead_pipeline is not None and lead_pipeline.entity_type is not EntityType.LEAD:
                self.add(
                    _join(path, "pipeline"), f"pipeline {lead_pipeline.id!r} is not a LEAD pipeline"
                )
        else:
            lead_pipeline = next(
                (p for p in self.pipelines.values() if p.entity_type is EntityType.LEAD), None
            )
        stage = None
        if lead_pipeline is not None:
            stage = a.get("stage", lead_pipeline.first_stage)
            if stage not in lead_pipeline.stages:
                self.add(
                    _join(path, "stage"), f"stage {stage!r} is not in pipeline {lead_pipeline.id!r}"
                )
        elif a.get("stage") is not None:
            self.add(_join(path, "stage"), "a stage needs a LEAD pipeline")
        if title is None:
            return None
        return CreateLeadSpec(
            title,
            responsible,
            lead_pipeline.id if lead_pipeline else None,
            None if stage is None else str(stage),
        )

    def copy_deal(self, raw: Any, path: str, entity: EntityType | None) -> CopyDealSpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["copy_deal"], ("target_pipeline",))
        if a is None:
            return None
        if entity is not None and entity is not EntityType.DEAL:
            self.add(path, "copy_deal needs a DEAL trigger")
        title = None
        if a.get("title") is not None:
            title = self.text(a["title"], _join(path, "title"), template=True)
        suffix = " (copy)"
        if a.get("suffix") is not None:
            suffix = self.text(a["suffix"], _join(path, "suffix"), allow_empty=True) or suffix
        responsible = None
        if a.get("responsible") is not None:
            responsible = self.text(a["responsible"], _join(path, "responsible"), template=True)
        target = None
        if a.get("target_pipeline") is not None:
            target = self.known_pipeline(a["target_pipeline"], _join(path, "target_pipeline"))
        if target is None:
            return None
        if target.entity_type is not EntityType.DEAL:
            self.add(
                _join(path, "target_pipeline"),
                f"pipeline {target.id!r} holds "
                f"{target.entity_type.value} items; copy_deal needs a DEAL pipeline",
            )
            return None
        stage = a.get("target_stage", target.first_stage)
        if stage not in target.stages:
            self.add(
                _join(path, "target_stage"),
                f"stage {stage!r} is not in target pipeline "
                f"{target.id!r} (stages: {', '.join(target.stages)})",
            )
            return None
        return CopyDealSpec(target.id, str(stage), title, suffix, responsible)

    def plan_activity(self, raw: Any, path: str) -> PlanActivitySpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["plan_activity"], ("subject",))
        if a is None:
            return None

        def p(key: str) -> str:
            return _join(path, key)

        subject = self.text(a.get("subject"), p("subject"), template=True)
        description = ""
        if a.get("description") is not None:
            description = (
                self.text(a["description"], p("description"), template=True, allow_empty=True) or ""
            )
        deadline = None
        if a.get("deadline") is not None:
            deadline = self.time_spec(a["deadline"], p("deadline"))
        responsible = None
        if a.get("responsible") is not None:
            responsible = self.text(a["responsible"], p("responsible"), template=True)
        color = a.get("color")
        if color is not None and (
            not isinstance(color, str) or not (color in COLORS or HEX_COLOR.fullmatch(color))
        ):
            self.add(p("color"), f"unknown colour {color!r} (a name like yellow, or #RRGGBB)")
        add_to_calendar, minutes = self.calendar_option(a.get("calendar"), p("calendar"))
        clients = a.get("clients", "none")
        if isinstance(clients, dict) and set(clients) == {"contact"}:
            clients = f"contact:{clients['contact']}"
        if not is_clients_mode(clients):
            self.add(
                p("clients"),
                f"expected none, first, all or {{contact: N}} (N from 1 to 100), got {clients!r}",
            )
            clients = "none"
        invite = self.id_list(a.get("invite"), p("invite"), MAX_INVITEES)
        address = None
        if a.get("address") is not None:
            address = self.text(a["address"], p("address"), template=True)
        location = None
        if a.get("location") is not None:
            location = self.identifier(a["location"], p("location"))
            if location is not None and not add_to_calendar:
                # The room is booked in the calendars, for the event's time: without one
                # the rule would name a room and book nothing.
                self.add(
                    p("location"),
                    f"room {location!r} is booked only with the activity in the calendar:"
                    " add `calendar: true` (or `calendar: {duration: 30m}`), or use"
                    " `address` for a place that needs no booking",
                )
        link = None
        if a.get("link") is not None:
            link = self.text(a["link"], p("link"), template=True)
            if link is not None:
                self.link_template(link, p("link"))
        files = self.files(a.get("files"), p("files"))
        complete = self.boolean(a.get("complete_on_stage_exit"), p("complete_on_stage_exit"), False)
        activity_type = a.get("activity_type", "task")
        if activity_type not in ACTIVITY_TYPES:
            self.add(
                p("activity_type"),
                f"expected {', '.join(ACTIVITY_TYPES)}, got {activity_type!r}",
            )
        if subject is None:
            return None
        return PlanActivitySpec(
            subject=subject,
            description=description,
            deadline=deadline,
            responsible=responsible,
            color=color,
            add_to_calendar=add_to_calendar,
            duration_minutes=minutes,
            clients=_clients_mode(clients),
            invite=invite,
            address=address,
            location=location,
            link=link,
            files=files,
            complete_on_stage_exit=complete,
            activity_type=str(activity_type),
        )

    def calendar_option(self, raw: Any, path: str) -> tuple[bool, int]:
        if raw is None or raw is False:
            return False, 30
        if raw is True:
            return True, 30
        c = self.mapping(raw, path, {"duration"})
        if c is None:
            return False, 30
        seconds = self.duration(c.get("duration", "30m"), _join(path, "duration"))
        if seconds is None:
            return True, 30
        if seconds < 60 or seconds % 60 or seconds > MAX_ACTIVITY_MINUTES * 60:
            self.add(_join(path, "duration"), "expected whole minutes between 1m and 7d")
            return True, 30
        return True, seconds // 60

    def id_list(self, raw: Any, path: str, limit: int) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or len(raw) > limit:
            self.add(path, f"expected a list of at most {limit} ids")
            return ()
        out = [self.identifier(v, f"{path}[{k}]") for k, v in enumerate(raw)]
        return tuple(v for v in out if v is not None)

    def files(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or len(raw) > MAX_FILES:
            self.add(path, f"expected a list of at most {MAX_FILES} URLs")
            return ()
        out: list[str] = []
        for k, url in enumerate(raw):
            problem = url_problem(url) if isinstance(url, str) else "expected a URL string"
            if problem is not None:
                self.add(f"{path}[{k}]", problem)
            else:
                out.append(url)
        return tuple(out)

    def link_template(self, link: str, path: str) -> None:
        # Placeholders may fill in a path or query, never the scheme or the host.
        sample = fill_placeholders(link, "x")
        problem = url_problem(sample)
        if problem is not None:
            self.add(path, problem)
            return
        head = link.split("://", 1)[-1].split("/", 1)[0]
        if fill_placeholders(head, "") != head or "://" not in link:
            self.add(path, "placeholders may not be part of the link's scheme or host")


def _clients_mode(value: Any) -> ClientsMode:
    return str(value) if is_clients_mode(value) else "none"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
