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


Check = Callable[[StageChanged], Outcome]
"""A condition or comparison compiled for one rule: an event in, its outcome out."""


def evaluate_condition(condition: Condition | None, event: StageChanged) -> Outcome:
    return _compiled_condition(condition)(event)


def compare(c: Comparison, event: StageChanged) -> Outcome:
    return _compiled_comparison(c)(event)


def compile_condition(condition: Condition | None) -> Check:
    """`condition` as a function of the event, made once per rule: the field readers,
    the rule's typed operands and every reason are found here, not per event."""
    if condition is None:
        return _always
    groups = tuple(
        tuple((compile_comparison(c), f"any[{g}].all[{i}] ") for i, c in enumerate(group))
        for g, group in enumerate(condition.any_of)
    )

    def check(event: StageChanged) -> Outcome:
        reasons: list[str] = []
        for group in groups:
            for compared, where in group:
                outcome = compared(event)
                if not outcome.matched:
                    reasons.append(f"{where}{outcome.reason}")
                    break
            else:
                return MATCHED
        return Outcome(False, "condition false: " + "; ".join(reasons))

    return check


def compile_comparison(c: Comparison) -> Check:
    """`c` as a function of the event. Raises ValueError or TypeError when the rule's own
    operand is not of its type or shape (validation refuses such a rule before it is
    published; `rule_from_spec` makes it an InvalidRuleSpec)."""
    read = field_reader(c.field)
    value_type = c.value_type
    if c.op in VALUELESS_OPS:
        wanted = c.op == "not_empty"
        absent = _false(c, "is empty" if wanted else "is not empty")

        def presence(event: StageChanged) -> Outcome:
            raw = read(event)
            present = bool(raw) if isinstance(raw, list) else raw is not None and raw != ""
            return MATCHED if present is wanted else absent

        return presence
    false = _false(c, "false")
    empty = MATCHED if c.op == "ne" else _false(c, "is empty")
    mismatch = _false(c, f"type mismatch (expected {value_type})")
    holds = _predicate(c)

    def comparison(event: StageChanged) -> Outcome:
        raw = read(event)
        values = raw if isinstance(raw, list) else ([] if raw is None or raw == "" else [raw])
        if not values:
            return empty
        try:
            if len(values) == 1:  # most fields hold one value: no comprehension for it
                operands = [_as_type(values[0], value_type)]
            else:
                operands = [_as_type(v, value_type) for v in values]
        except _Mismatch:
            return mismatch
        return MATCHED if holds(raw, values, operands) else false

    return comparison


_Predicate = Callable[[object, list[Any], list[Any]], bool]
"""Whether a comparison holds, given the field's raw value, its values and their typed
operands (never empty)."""


def _predicate(c: Comparison) -> _Predicate:
    value_type = c.value_type
    if c.op == "contains":
        needle = str(c.value).casefold()

        def contains(raw: object, values: list[Any], _operands: list[Any]) -> bool:
            if isinstance(raw, list):
                return any(str(v).casefold() == needle for v in values)
            return needle in str(values[0]).casefold()

        return contains
    if c.op == "in":
        if isinstance(c.value, str):  # validation refuses it: a spec written by hand
            raise TypeError(f"{c.field} in: a list of values expected")
        options = frozenset(typed(v, value_type) for v in c.value or ())
        return lambda _raw, _values, operands: not options.isdisjoint(operands)
    if not isinstance(c.value, str):  # validation refuses it: a spec written by hand
        raise TypeError(f"{c.field} {c.op}: one value expected")
    target = typed(c.value, value_type)
    # In C rather than a generator per comparison: `in` is "some operand == target"
    # (its identity shortcut cannot differ: an operand is never the rule's own object).
    if c.op == "eq":
        return lambda _raw, _values, operands: target in operands
    if c.op == "ne":
        return lambda _raw, _values, operands: target not in operands
    ordering = ORDERING_OPS[c.op]
    return lambda _raw, _values, operands: any(map(ordering, operands, repeat(target)))


def _always(_event: StageChanged) -> Outcome:
    return MATCHED


def _false(c: Comparison, why: str) -> Outcome:
    return Outcome(False, f"{c.field} {c.op}: {why}")


# The entry points that take a condition or comparison as data (tests, the simulator)
# compile it once; the engine compiles each rule's condition when the rule is indexed.
_compiled_condition = lru_cache(maxsize=1024)(compile_condition)
_compiled_comparison = lru_cache(maxsize=1024)(compile_comparison)


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
