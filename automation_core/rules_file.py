"""Rules files (YAML) → validated Pipelines and Rules, with every problem reported.

`validate_rules_file(text)` either returns `ValidatedRules` or raises `RulesInvalid`
listing all problems, each with its path, e.g.
`rules[2] (call-client).action.deadline.timezone: unknown time zone 'Europe/Berln'`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from automation_core.canonical import rule_to_spec, rule_version
from automation_core.model import EntityType, Pipeline, Rule
from automation_core.rule_errors import Problem, RulesInvalid
from automation_core.rule_spec import RuleSpec
from automation_core.rules_check.actions import ActionChecks
from automation_core.rules_check.calendars import CalendarChecks
from automation_core.rules_check.conditions import ConditionChecks
from automation_core.rules_check.limits import (
    _RULE_KEYS,
    _TOP_KEYS,
    MAX_FILE_CHARS,
    MAX_RULES,
)
from automation_core.rules_check.shapes import join_path
from automation_core.time_spec import WorkingCalendar
from automation_core.yaml_loader import line_numbers, load_yaml

__all__ = ["MAX_RULES", "ValidatedRules", "validate_rules_data", "validate_rules_file"]


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


class _Checker(ActionChecks, ConditionChecks, CalendarChecks):
    """The whole file: its document, rules and triggers; the parts come from the mixins."""

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
                    join_path(path, "id"),
                    f"duplicate rule id (first at rules[{first_seen[rule_id]}])",
                )
            elif isinstance(rule_id, str):
                first_seen[rule_id] = i
            rule = self.rule(raw, path, i)
            if rule is not None:
                rules.append(rule)
        return ValidatedRules(tuple(self.pipelines.values()), dict(self.calendars), tuple(rules))

    # -- rules ------------------------------------------------------------------------

    def rule(self, raw: Any, path: str, index: int) -> Rule | None:
        r = self.mapping(raw, path, _RULE_KEYS, ("id", "trigger", "action"))
        if r is None:
            return None
        before = len(self.problems)
        rule_id = self.identifier(r.get("id"), join_path(path, "id"))
        trigger = self.trigger(r.get("trigger"), join_path(path, "trigger"))
        condition = None
        if r.get("condition") is not None:
            condition = self.condition(r["condition"], join_path(path, "condition"))
        when = None
        if r.get("when") is not None:
            when = self.time_spec(r["when"], join_path(path, "when"))
        position = r.get("position", index)
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            self.add(
                join_path(path, "position"), f"expected a non-negative integer, got {position!r}"
            )
        after_previous = self.boolean(
            r.get("after_previous"), join_path(path, "after_previous"), False
        )
        enabled = self.boolean(r.get("enabled"), join_path(path, "enabled"), True)
        cancel = self.boolean(
            r.get("cancel_on_stage_exit"), join_path(path, "cancel_on_stage_exit"), True
        )
        action = None
        if r.get("action") is not None:
            action = self.action(
                r["action"], join_path(path, "action"), trigger[0] if trigger else None
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
        entity = self.entity_type(t.get("entity_type"), join_path(path, "entity_type"))
        pipeline = self.known_pipeline(t.get("pipeline"), join_path(path, "pipeline"))
        stage = t.get("stage")
        if pipeline is None or entity is None:
            return None
        if pipeline.entity_type is not entity:
            self.add(
                join_path(path, "pipeline"),
                f"pipeline {pipeline.id!r} holds "
                f"{pipeline.entity_type.value} items, not {entity.value}",
            )
            return None
        if stage not in pipeline.stages:
            self.add(
                join_path(path, "stage"),
                f"unknown stage {stage!r} in pipeline "
                f"{pipeline.id!r} (stages: {', '.join(pipeline.stages)})",
            )
            return None
        return entity, pipeline.id, str(stage)
