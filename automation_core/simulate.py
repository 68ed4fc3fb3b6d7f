"""Offline test runs of rules: evaluate a sequence of events as the running pipeline would.

Each item's state is carried from event to event. An item an action creates (a deal copy,
a lead with a pipeline) enters its stage as the sink would announce it: an immediate
action's item right after the event that caused it, a delayed one's at its due time
(unless the stage entry that scheduled it was left before), so its own rules run too,
up to the chain limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from automation_core.created_items import announcement
from automation_core.evaluate import Decision, ItemState, RuleIndex, evaluate
from automation_core.model import Action, StageChanged

MAX_STEPS = 100_000
"""A bound on one run (every chain ends at the chain limit; this bounds the file too)."""


@dataclass(frozen=True)
class Step:
    event: StageChanged
    decision: Decision
    entered: bool = True
    """The event entered its stage, so the stage's rules ran; False for an event of the
    stage the item was already in (a field update), a duplicate or a stale one."""
    created_by: Action | None = None
    """The action that created the item this event announces; None for a given event."""


def simulate(events: Iterable[StageChanged], index: RuleIndex) -> list[Step]:
    """What the engine would decide for `events`, in order, and for the items created."""
    run = _Run(index)
    for event in events:
        run.created_until(event.occurred_at)
        run.step(event, None)
    run.created_until(None)
    return run.steps


class _Run:
    def __init__(self, index: RuleIndex) -> None:
        self._index = index
        self._states: dict[str, ItemState] = {}
        self._left: set[tuple[str, str]] = set()
        """(item key, stage entry id) of stage entries left: their timers are cancelled."""
        self._created: list[tuple[datetime, int, Action, StageChanged, bool]] = []
        """Heap of (when, order, action, its item's entry, cancellable) for created items."""
        self._order = 0
        self.steps: list[Step] = []

    def step(self, event: StageChanged, created_by: Action | None) -> None:
        if len(self.steps) >= MAX_STEPS:
            raise ValueError(f"more than {MAX_STEPS} steps in one run")
        state = self._states.get(event.key)
        decision = evaluate(event, state, self._index)
        entered = decision.outcome == "processed" and (
            state is None
            or (state.pipeline_id, state.stage_id) != (event.pipeline_id, event.stage_id)
        )
        if decision.new_state is not None:
            self._states[event.key] = decision.new_state
        self.steps.append(Step(event, decision, entered, created_by))
        self._left.update(
            (c.item_key, c.stage_entry_id)
            for c in decision.cancels
            if c.item_key is not None and c.stage_entry_id is not None
        )
        for action in decision.actions:
            self._push(action.occurred_at, action, cancellable=False)
        for timer in decision.timers:
            if timer.action is not None and timer.due_at is not None:
                self._push(timer.due_at, timer.action, cancellable=timer.stage_entry_id is not None)

    def created_until(self, moment: datetime | None) -> None:
        """Let the items created up to `moment` (None: all of them) enter their stages."""
        while self._created and (moment is None or self._created[0][0] <= moment):
            _when, _order, action, event, cancellable = heapq.heappop(self._created)
            if cancellable and (action.item_key, action.stage_entry_id) in self._left:
                continue  # the timer was cancelled when its stage entry was left
            self.step(event, action)

    def _push(self, when: datetime, action: Action, cancellable: bool) -> None:
        event = announcement(action)
        if event is not None:
            self._order += 1
            heapq.heappush(self._created, (when, self._order, action, event, cancellable))
