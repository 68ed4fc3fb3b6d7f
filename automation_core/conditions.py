"""Conditions: an OR of AND-groups of typed field comparisons.

Typing is strict: a decimal is compared as a Decimal, a date as a date, anything else
as a string. A value that cannot be read as the comparison's type makes the comparison
false with a reason; it never raises.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import repeat
from typing import Any

from automation_core.fields import field_reader
from automation_core.model import StageChanged
from automation_core.rule_spec import Comparison, Condition, ValueType

ORDERING_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
OPS = frozenset({"eq", "ne", "in", "contains", "empty", "not_empty", *ORDERING_OPS})
VALUELESS_OPS = frozenset({"empty", "not_empty"})


@dataclass(frozen=True)
class Outcome:
    matched: bool
    reason: str | None = None
    """Why it did not match (no field values: they may be personal data)."""


MATCHED = Outcome(True)
"""The one matched outcome (immutable): a condition is evaluated per event and rule."""


class _Mismatch(Exception):
    pass


_DECIMAL_OR_DATE = (Decimal, date)
"""For isinstance: `Decimal | date` written in a call builds a union object per call."""


def typed(value: str, value_type: ValueType) -> str | Decimal | date:
    """`value` read as `value_type`; ValueError when it is not one."""
    if value_type == "decimal":
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite decimal")
        return number
    if value_type == "date":
        return date.fromisoformat(value.strip())
    return value


def evaluate_condition(condition: Condition | None, event: StageChanged) -> Outcome:
    if condition is None:
        return MATCHED
    reasons: list[str] = []
    for g, group in enumerate(condition.any_of):
        for c, comparison in enumerate(group):
            outcome = compare(comparison, event)
            if not outcome.matched:
                reasons.append(f"any[{g}].all[{c}] {outcome.reason}")
                break
        else:
            return MATCHED
    return Outcome(False, "condition false: " + "; ".join(reasons))


def compare(c: Comparison, event: StageChanged) -> Outcome:
    raw = field_reader(c.field)(event)
    values = raw if isinstance(raw, list) else ([] if raw is None or raw == "" else [raw])
    if c.op == "empty":
        return _result(not values, c, "is not empty")
    if c.op == "not_empty":
        return _result(bool(values), c, "is empty")
    if not values:
        return _result(c.op == "ne", c, "is empty")
    value_type = c.value_type
    try:
        if len(values) == 1:  # most fields hold one value: no comprehension for it
            operands = [_as_type(values[0], value_type)]
        else:
            operands = [_as_type(v, value_type) for v in values]
    except _Mismatch:
        return Outcome(False, f"{c.field} {c.op}: type mismatch (expected {c.value_type})")
    if c.op == "contains":
        needle = str(c.value).casefold()
        if isinstance(raw, list):
            return _result(any(str(v).casefold() == needle for v in values), c, "false")
        return _result(needle in str(values[0]).casefold(), c, "false")
    if c.op == "in":
        assert not isinstance(c.value, str)  # noqa: S101 - validation: a list here
        options = _options(c.value or (), value_type)
        return _result(not options.isdisjoint(operands), c, "false")
    assert isinstance(c.value, str)  # noqa: S101 - validation guarantees a scalar here
    target = _target(c.value, value_type)
    # In C rather than a generator per comparison: `in` is "some operand == target"
    # (its identity shortcut cannot differ: an operand is never the rule's own object).
    if c.op == "eq":
        return _result(target in operands, c, "false")
    if c.op == "ne":
        return _result(target not in operands, c, "false")
    return _result(any(map(ORDERING_OPS[c.op], operands, repeat(target))), c, "false")


@lru_cache(maxsize=4096)
def _target(value: str, value_type: ValueType) -> str | Decimal | date:
    """`typed` of a rule's own operand, remembered: the same rules run for every event."""
    return typed(value, value_type)


@lru_cache(maxsize=4096)
def _options(values: tuple[str, ...], value_type: ValueType) -> frozenset[str | Decimal | date]:
    return frozenset(typed(v, value_type) for v in values)


def _as_type(value: object, value_type: ValueType) -> str | Decimal | date:
    if value_type == "decimal" and isinstance(value, Decimal):
        return value
    if value_type == "date" and isinstance(value, date):
        return value
    if value_type == "string" and type(value) is str:
        return value  # what typed() gives back for a string read as a string
    if isinstance(value, _DECIMAL_OR_DATE) and value_type != "string":
        raise _Mismatch
    text = value.isoformat() if isinstance(value, date) else str(value)
    try:
        return typed(text, value_type)
    except ValueError:
        raise _Mismatch from None


def _result(matched: bool, c: Comparison, why: str) -> Outcome:
    return MATCHED if matched else Outcome(False, f"{c.field} {c.op}: {why}")
