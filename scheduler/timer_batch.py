"""One consumed batch of `automation.timers`, sorted into schedules, cancels and dead letters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from automation_core.model import Action, ActionMode, TimerCommand, TimerCommandKind
from runtime import codec
from runtime.consume import Batch, decode_batch
from runtime.dlq import ConsumedMessage, DeadLetter
from scheduler.timer_store import RuleCancel, Schedule, StageEntryCancel

TimerEntry = Schedule | StageEntryCancel | RuleCancel


def decode(value: bytes) -> TimerEntry:
    """A timer command's message as what the timers table needs of it; `InvalidMessage`
    when it does not decode or lacks what its kind needs.

    A command of the current schema is skimmed (runtime.codec.skim): its ids and times
    are read, its action's payload only stepped over (it is stored as bytes and decoded
    in full where it fires); an older one is decoded in full.
    """
    head = _skim_command()(value)
    if head is None:
        return entry_of(codec.decode_as(value, TimerCommand), value)
    action = head.pop("action")
    try:
        command = CommandHead(
            kind=TimerCommandKind(head.pop("kind")),
            action=None if action is None else ActionHead(**action),
            **head,
        )
    except ValueError as exc:  # an unknown kind or mode, as the full decoder says it
        raise codec.InvalidMessage("invalid_record", f"TimerCommand is not valid: {exc}") from exc
    return entry_of(command, value)


@dataclass(frozen=True, slots=True)
class ActionHead:
    """The fields of a command's action that its timer row needs."""

    action_id: str
    rule_id: str
    rule_version: str
    item_key: str
    event_id: str
    mode: str
    due_at: datetime | None

    def __post_init__(self) -> None:
        ActionMode(self.mode)  # the full decoder refuses an unknown mode too


@dataclass(frozen=True, slots=True)
class CommandHead:
    """A timer command as skimmed: everything but its action's payload and item."""

    kind: TimerCommandKind
    issued_at: datetime
    item_key: str | None
    stage_entry_id: str | None
    rule_id: str | None
    due_at: datetime | None
    rule_version: str | None
    action: ActionHead | None


_HEAD_FIELDS = {
    **{name: True for name in CommandHead.__dataclass_fields__ if name != "action"},
    "action": {name: True for name in ActionHead.__dataclass_fields__},
}


@cache
def _skim_command() -> codec.Skimmer:
    return codec.skimmer("TimerCommand", _HEAD_FIELDS)


def entry_of(command: TimerCommand | CommandHead, encoded: bytes | None = None) -> TimerEntry:
    """`encoded` is the command's message, if at hand (its action is then not re-encoded)."""
    if command.kind is TimerCommandKind.SCHEDULE:
        return schedule_of(command, encoded)
    if command.kind is TimerCommandKind.CANCEL_STAGE_ENTRY:
        if not command.item_key or not command.stage_entry_id:
            raise codec.InvalidMessage(
                "invalid_timer_command", "stage entry cancel without item_key/stage_entry_id"
            )
        return StageEntryCancel(command.item_key, command.stage_entry_id, command.issued_at)
    if command.kind is TimerCommandKind.CANCEL_RULE:
        if not command.rule_id:
            raise codec.InvalidMessage("invalid_timer_command", "rule cancel without rule_id")
        return RuleCancel(command.rule_id, command.issued_at, command.rule_version)
    raise codec.InvalidMessage("invalid_timer_command", f"unknown kind {command.kind}")


@dataclass
class TimerBatch:
    """One consumed batch of `automation.timers`, sorted into schedules and cancels."""

    schedules: list[Schedule] = field(default_factory=list)
    entry_cancels: list[StageEntryCancel] = field(default_factory=list)
    rule_cancels: list[RuleCancel] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    @classmethod
    def of(cls, messages: Iterable[ConsumedMessage]) -> TimerBatch:
        return cls.sorted(decode_batch(list(messages), decode))

    @classmethod
    def sorted(cls, decoded: Batch[TimerEntry]) -> TimerBatch:
        batch = cls(dead=list(decoded.dead), next_offsets=dict(decoded.next_offsets))
        for entry in decoded.records:
            batch.add_entry(entry)
        return batch

    def add(self, command: TimerCommand, encoded: bytes | None = None) -> None:
        """Sort one command; raise `InvalidMessage` if it lacks what its kind needs."""
        self.add_entry(entry_of(command, encoded))

    def add_entry(self, entry: TimerEntry) -> None:
        if isinstance(entry, Schedule):
            self.schedules.append(entry)
        elif isinstance(entry, StageEntryCancel):
            self.entry_cancels.append(entry)
        else:
            self.rule_cancels.append(entry)


def schedule_of(command: TimerCommand | CommandHead, encoded: bytes | None = None) -> Schedule:
    """The timer row of a SCHEDULE command (its id is the action id).

    With the command's message at hand, the stored action is sliced out of it rather than
    encoded again (same bytes; encoding was a third of the ingest path's CPU).
    """
    action = command.action
    if action is None:
        raise codec.InvalidMessage("invalid_timer_command", "schedule without an action")
    due_at = command.due_at or action.due_at
    if due_at is None:
        raise codec.InvalidMessage("invalid_timer_command", "schedule without due_at")
    stored = codec.embedded_action(encoded) if encoded is not None else None
    if stored is None:
        if not isinstance(action, Action):  # a skimmed command always comes with its bytes
            raise TypeError("a skimmed command's action is stored from its message")
        stored = codec.encode(action)
    return Schedule(
        timer_id=action.action_id,
        item_key=command.item_key or action.item_key,
        stage_entry_id=command.stage_entry_id,
        rule_id=command.rule_id or action.rule_id,
        rule_version=action.rule_version,
        event_id=action.event_id,
        issued_at=command.issued_at,
        due_at=due_at,
        action=stored,
    )
