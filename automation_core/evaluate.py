"""The pure core's entry point: one stage change in, a Decision (plain data) out.

`evaluate(event, state, index)` never reads the clock: every time is derived
from `event.occurred_at`. The engine keeps `Decision.new_state` per item and produces
the decision's actions, timer commands and execution records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from automation_core import ids
from automation_core.actions import ActionFailed
from automation_core.canonical import rule_from_spec
from automation_core.compiled_rule import CompiledRule
from automation_core.fast_init import fast_init
from automation_core.model import (
    Action,
    ActionMode,
    CompleteActivities,
    Execution,
    ExecutionStatus,
    Rule,
    StageChanged,
    TimerCommand,
    TimerCommandKind,
)
from automation_core.rule_errors import InvalidRuleSpec
from automation_core.timing import TimingError, compute_due, next_working_moment, to_millis

logger = logging.getLogger(__name__)

SEEN_EVENTS_WINDOW = 64
"""How many recent event ids per item are remembered to drop duplicates."""

Outcome = Literal["processed", "duplicate", "stale"]
Trigger = tuple[str, str, str]


@fast_init
@dataclass(frozen=True)
class ItemState:
    """What the engine remembers about one item between its events."""

    pipeline_id: str
    stage_id: str
    stage_entry_id: str
    """Event id of the event that entered the current stage."""
    last_occurred_at: datetime
    recent_event_ids: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True)
class Decision:
    """Everything one event causes; plain data for the engine to produce.

    outcome: `processed`, `duplicate` (event id seen: nothing new) or `stale` (older
    than the item's last applied event: no rule fires). `new_state` None means "leave
    the stored state as it is".
    """

    outcome: Outcome
    actions: tuple[Action, ...] = ()
    timers: tuple[TimerCommand, ...] = ()
    cancels: tuple[TimerCommand, ...] = ()
    completions: tuple[Action, ...] = ()
    executions: tuple[Execution, ...] = ()
    new_state: ItemState | None = None


@dataclass(frozen=True)
class RuleIndex:
    """Enabled rules by trigger (sorted by position, then id) and all rules by id."""

    by_trigger: Mapping[Trigger, tuple[CompiledRule, ...]] = field(default_factory=dict)
    by_id: Mapping[str, CompiledRule] = field(default_factory=dict)
    invalid: tuple[str, ...] = ()
    """Ids of rules whose spec could not be parsed (left out of the index)."""

    def rules_for(
        self, entity_type: str, pipeline_id: str, stage_id: str
    ) -> tuple[CompiledRule, ...]:
        return self.by_trigger.get((entity_type, pipeline_id, stage_id), ())


def rule_index_from(rules: Iterable[Rule], previous: RuleIndex | None = None) -> RuleIndex:
    """Index `rules`; specs of rules unchanged since `previous` are not parsed again."""
    by_id: dict[str, CompiledRule] = {}
    grouped: dict[Trigger, list[CompiledRule]] = {}
    invalid: list[str] = []
    for rule in rules:
        known = previous.by_id.get(rule.id) if previous is not None else None
        if known is not None and known.rule == rule:
            compiled = known
        else:
            try:
                compiled = rule_from_spec(rule)
            except InvalidRuleSpec:
                logger.error(
                    "rule left out of the index rule_id=%s version=%s", rule.id, rule.version
                )
                invalid.append(rule.id)
                continue
        by_id[rule.id] = compiled
        if rule.enabled:
            trigger = (str(rule.entity_type), rule.pipeline_id, rule.stage_id)
            grouped.setdefault(trigger, []).append(compiled)
    by_trigger = {
        trigger: tuple(sorted(group, key=lambda c: (c.rule.position, c.rule.id)))
        for trigger, group in grouped.items()
    }
    return RuleIndex(by_trigger, by_id, tuple(invalid))


def evaluate(event: StageChanged, state: ItemState | None, index: RuleIndex) -> Decision:
    """What `event` causes, given the item's previous `state` and the rules (which carry
    everything they need: target stages and calendars are resolved when the rules file
    is validated)."""
    if state is not None and event.event_id in state.recent_event_ids:
        return Decision("duplicate")
    if state is not None and event.occurred_at < state.last_occurred_at:
        stale = Execution(
            rule_id="",
            item_key=event.key,
            event_id=event.event_id,
            status=ExecutionStatus.STALE,
            recorded_at=event.occurred_at,
            reason="stale: older than the last applied event of this item",
        )
        return Decision("stale", executions=(stale,))
    window = (*(state.recent_event_ids if state else ()), event.event_id)[-SEEN_EVENTS_WINDOW:]
    last = event.occurred_at if state is None else max(state.last_occurred_at, event.occurred_at)
    if state is not None and (state.pipeline_id, state.stage_id) == (
        event.pipeline_id,
        event.stage_id,
    ):
        # Not an entry: the item was already in this stage (e.g. a field update).
        return Decision(
            "processed",
            new_state=ItemState(
                state.pipeline_id, state.stage_id, state.stage_entry_id, last, window
            ),
        )
    cancels, completions = _leave(event, state)
    actions: list[Action] = []
    timers: list[TimerCommand] = []
    executions: list[Execution] = []
    previous_done = event.occurred_at
    id_material = ids.event_material(event.key, event.event_id)
    for compiled in index.rules_for(str(event.entity_type), event.pipeline_id, event.stage_id):
        floor = previous_done if compiled.rule.after_previous else event.occurred_at
        result = _run_rule(compiled, event, floor, id_material)
        executions.append(result.execution)
        if result.action is not None:
            if result.action.mode is ActionMode.IMMEDIATE:
                actions.append(result.action)
            else:
                timers.append(_schedule(compiled, event, result.action))
        previous_done = result.done_at
    return Decision(
        "processed",
        actions=tuple(actions),
        timers=tuple(timers),
        cancels=cancels,
        completions=completions,
        executions=tuple(executions),
        new_state=ItemState(event.pipeline_id, event.stage_id, event.event_id, last, window),
    )


def _leave(
    event: StageChanged, state: ItemState | None
) -> tuple[tuple[TimerCommand, ...], tuple[Action, ...]]:
    """Cancel the pending timers of the stage entry just left; complete its activities."""
    if state is None:
        return (), ()
    cancel = TimerCommand(
        kind=TimerCommandKind.CANCEL_STAGE_ENTRY,
        issued_at=event.occurred_at,
        item_key=event.key,
        stage_entry_id=state.stage_entry_id,
    )
    complete = Action(
        action_id=ids.completion_id(event.key, event.event_id, state.stage_entry_id),
        rule_id="",
        rule_version="",
        item_key=event.key,
        event_id=event.event_id,
        stage_entry_id=state.stage_entry_id,
        occurred_at=event.occurred_at,
        mode=ActionMode.IMMEDIATE,
        payload=CompleteActivities(stage_id=state.stage_id, completed_at=event.occurred_at),
    )
    return (cancel,), (complete,)


class _RuleResult(NamedTuple):
    # A tuple, not a frozen dataclass: one is made for every rule an event runs.
    execution: Execution
    action: Action | None
    done_at: datetime
    """When this rule is done, for a following rule that runs "after the previous"."""


def _run_rule(
    compiled: CompiledRule, event: StageChanged, floor: datetime, id_material: str
) -> _RuleResult:
    """`id_material`: the event's part of its action ids (`ids.event_material`)."""
    rule, spec = compiled.rule, compiled.spec
    action_id = ids.action_id_of(id_material, compiled.id_material)

    def record(
        status: ExecutionStatus, reason: str | None = None, due_at: datetime | None = None
    ) -> Execution:
        return Execution(
            rule_id=rule.id,
            item_key=event.key,
            event_id=event.event_id,
            status=status,
            recorded_at=event.occurred_at,
            action_id=action_id,
            rule_version=rule.version,
            due_at=due_at,
            reason=reason,
        )

    condition = compiled.check(event)
    if not condition.matched:
        return _RuleResult(record(ExecutionStatus.SKIPPED, condition.reason), None, floor)
    try:
        due = (
            event.occurred_at
            if spec.when is None
            else compute_due(spec.when, event.occurred_at, event)
        )
    except TimingError as exc:
        return _RuleResult(record(ExecutionStatus.FAILED, exc.reason), None, floor)
    if floor > due:
        due = floor
        if spec.when is not None and spec.when.working_time is not None:
            due = to_millis(next_working_moment(due, spec.when.working_time))
    immediate = due <= event.occurred_at
    runs_at = event.occurred_at if immediate else due
    try:
        payload = compiled.build_payload(event, action_id, runs_at)
    except ActionFailed as exc:
        return _RuleResult(record(ExecutionStatus.FAILED, exc.reason), None, floor)
    action = Action(
        action_id=action_id,
        rule_id=rule.id,
        rule_version=rule.version,
        item_key=event.key,
        event_id=event.event_id,
        stage_entry_id=event.event_id,
        occurred_at=event.occurred_at,
        mode=ActionMode.IMMEDIATE if immediate else ActionMode.DELAYED,
        payload=payload,
        due_at=None if immediate else runs_at,
    )
    if immediate:
        return _RuleResult(record(ExecutionStatus.FIRED), action, runs_at)
    return _RuleResult(record(ExecutionStatus.SCHEDULED, due_at=runs_at), action, runs_at)


def _schedule(compiled: CompiledRule, event: StageChanged, action: Action) -> TimerCommand:
    # A rule that opts out of cancellation is scheduled without a stage entry, so the
    # stage-entry cancel for the stage it was created in does not reach it.
    return TimerCommand(
        kind=TimerCommandKind.SCHEDULE,
        issued_at=event.occurred_at,
        item_key=event.key,
        stage_entry_id=event.event_id if compiled.spec.cancel_on_stage_exit else None,
        rule_id=compiled.rule.id,
        due_at=action.due_at,
        action=action,
    )


def cancel_rule(rule_id: str, issued_at: datetime, version: str | None = None) -> TimerCommand:
    """The command that cancels every pending timer of a deleted or disabled rule, or, with
    `version`, only those of that version of an edited rule."""
    return TimerCommand(
        kind=TimerCommandKind.CANCEL_RULE,
        issued_at=issued_at,
        rule_id=rule_id,
        rule_version=version,
    )
