"""A rule ready for evaluation: its spec parsed, its condition and its action compiled."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from automation_core import ids
from automation_core.actions import PayloadBuilder, payload_builder
from automation_core.conditions import Check, compile_condition
from automation_core.model import Rule
from automation_core.rule_spec import RuleSpec


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its spec parsed once. `check` and `build_payload` are its condition
    and its action as functions of the event (`conditions.compile_condition`,
    `actions.payload_builder`): what a rule reads and renders is found once, when the
    rule is indexed, not for every event it meets."""

    rule: Rule
    spec: RuleSpec
    check: Check = field(init=False, compare=False, repr=False)
    build_payload: PayloadBuilder = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Frozen: the compiled parts are set once here, as dataclasses do for fields.
        object.__setattr__(self, "check", compile_condition(self.spec.condition))
        object.__setattr__(self, "build_payload", payload_builder(self.spec.action))

    @functools.cached_property
    def id_material(self) -> str:
        """The rule's part of the id of the action it creates (`ids.rule_material`)."""
        return ids.rule_material(self.rule.id, self.rule.version, 0)
