"""A rule's condition: comparisons of allowlisted fields with typed values."""

from __future__ import annotations

from typing import Any

from automation_core.conditions import OPS, VALUELESS_OPS, typed
from automation_core.fields import canonical_field, field_type, is_custom
from automation_core.rule_spec import (
    Comparison,
    Condition,
    ValueType,
)
from automation_core.rules_check.limits import MAX_IN_VALUES
from automation_core.rules_check.shapes import Shapes, join_path, kind_of


class ConditionChecks(Shapes):
    def condition(self, raw: Any, path: str) -> Condition | None:
        if isinstance(raw, dict) and set(raw) == {"all"}:
            raw = {"any": [raw]}
        c = self.mapping(raw, path, {"any"}, ("any",))
        if c is None or not isinstance(c.get("any"), list) or not c["any"]:
            if c is not None:
                self.add(join_path(path, "any"), "expected a non-empty list of {all: [...]} groups")
            return None
        groups: list[tuple[Comparison, ...]] = []
        for g, raw_group in enumerate(c["any"]):
            gpath = f"{path}.any[{g}]"
            group = self.mapping(raw_group, gpath, {"all"}, ("all",))
            if group is None:
                continue
            items = group.get("all")
            if not isinstance(items, list) or not items:
                self.add(join_path(gpath, "all"), "expected a non-empty list of comparisons")
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
            self.add(join_path(path, "field"), f"unknown field {c.get('field')!r}")
        if op not in OPS:
            self.add(join_path(path, "op"), f"unknown op {op!r} (one of {', '.join(sorted(OPS))})")
        if field is None or op not in OPS:
            return None
        value = c.get("value")
        if op in VALUELESS_OPS:
            if value is not None:
                self.add(join_path(path, "value"), f"op {op!r} takes no value")
            return Comparison(field, str(op), None, "string")
        value_type = self.value_type(field, c, str(op), path)
        if value_type is None:
            return None
        if op == "in":
            if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
                self.add(
                    join_path(path, "value"), f"op 'in' needs a list of 1 to {MAX_IN_VALUES} values"
                )
                return None
            texts = [self.scalar(v, value_type, f"{path}.value[{k}]") for k, v in enumerate(value)]
            if any(t is None for t in texts):
                return None
            return Comparison(field, "in", tuple(t for t in texts if t is not None), value_type)
        text = self.scalar(value, value_type, join_path(path, "value"))
        return None if text is None else Comparison(field, str(op), text, value_type)

    def value_type(self, field: str, c: dict[str, Any], op: str, path: str) -> ValueType | None:
        declared = c.get("type")
        kind = field_type(field)
        if declared is not None:
            if declared not in ("string", "decimal", "date"):
                self.add(
                    join_path(path, "type"), f"expected string, decimal or date, got {declared!r}"
                )
                return None
            if kind in ("decimal", "date") and declared != kind:
                self.add(join_path(path, "type"), f"{field} is a {kind} field")
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
            self.add(path, f"expected a {value_type} value, got {kind_of(value)}")
            return None
        text = str(value)
        try:
            typed(text, value_type)
        except ValueError:
            self.add(path, f"{text!r} is not a {value_type}")
            return None
        return text
