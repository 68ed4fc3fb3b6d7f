"""Offline test runs of rules: evaluate a sequence of events, carrying each item's state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from automation_core.evaluate import Decision, ItemState, RuleIndex, evaluate
from automation_core.model import Pipeline, StageChanged


@dataclass(frozen=True)
class Step:
    event: StageChanged
    decision: Decision


def simulate(
    events: Iterable[StageChanged], index: RuleIndex, pipelines: Mapping[str, Pipeline]
) -> list[Step]:
    """What the engine would decide for `events`, in order, as one engine would see them."""
    states: dict[str, ItemState] = {}
    steps: list[Step] = []
    for event in events:
        decision = evaluate(event, states.get(event.key), index, pipelines)
        if decision.new_state is not None:
            states[event.key] = decision.new_state
        steps.append(Step(event, decision))
    return steps
