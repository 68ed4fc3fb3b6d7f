"""Sorting a consumed batch of timer commands: schedules, cancels, dead letters, offsets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from automation_core.model import (
    Action,
    ActionMode,
    CreateLead,
    TimerCommand,
    TimerCommandKind,
)
from runtime import codec
from runtime.dlq import HEADER_OFFSET, HEADER_REASON
from scheduler.timer_batch import TimerBatch, schedule_of

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=180)


@dataclass
class FakeMessage:
    _value: bytes | None
    _offset: int
    _partition: int = 0
    _key: bytes | None = b"DEAL:1"

    def topic(self) -> str:
        return "automation.timers"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


def an_action(action_id: str = "a-1") -> Action:
    return Action(
        action_id=action_id,
        rule_id="renewal-lead",
        rule_version="v3",
        item_key="DEAL:1",
        event_id="evt-1",
        stage_entry_id="evt-1",
        occurred_at=T0,
        mode=ActionMode.DELAYED,
        payload=CreateLead(
            lead_id="lead-a-1", title="Renew", responsible_id="u-7", company=None, contacts=()
        ),
        due_at=DUE,
    )


def a_schedule(stage_entry_id: str | None = "evt-1") -> TimerCommand:
    return TimerCommand(
        kind=TimerCommandKind.SCHEDULE,
        issued_at=T0,
        item_key="DEAL:1",
        stage_entry_id=stage_entry_id,
        rule_id="renewal-lead",
        due_at=DUE,
        action=an_action(),
    )


def test_a_schedule_becomes_a_timer_whose_id_is_the_action_id_and_payload_the_encoded_action() -> (
    None
):
    s = schedule_of(a_schedule())
    assert (s.timer_id, s.item_key, s.stage_entry_id, s.rule_id, s.rule_version, s.event_id) == (
        "a-1",
        "DEAL:1",
        "evt-1",
        "renewal-lead",
        "v3",
        "evt-1",
    )
    assert (s.issued_at, s.due_at) == (T0, DUE)
    assert codec.decode_as(s.action, Action) == an_action()


def test_a_rule_that_opted_out_of_stage_exit_cancellation_keeps_no_stage_entry() -> None:
    assert schedule_of(a_schedule(stage_entry_id=None)).stage_entry_id is None


def test_commands_are_sorted_by_kind_and_the_next_offset_is_kept_per_partition() -> None:
    messages = [
        FakeMessage(codec.encode(a_schedule()), 10),
        FakeMessage(
            codec.encode(
                TimerCommand(
                    kind=TimerCommandKind.CANCEL_STAGE_ENTRY,
                    issued_at=T0,
                    item_key="DEAL:1",
                    stage_entry_id="evt-1",
                )
            ),
            11,
        ),
        FakeMessage(
            codec.encode(
                TimerCommand(
                    kind=TimerCommandKind.CANCEL_RULE, issued_at=T0, rule_id="renewal-lead"
                )
            ),
            7,
            2,
        ),
    ]
    batch = TimerBatch.of(messages)
    assert [s.timer_id for s in batch.schedules] == ["a-1"]
    assert [(c.item_key, c.stage_entry_id) for c in batch.entry_cancels] == [("DEAL:1", "evt-1")]
    assert [(c.rule_id, c.issued_at) for c in batch.rule_cancels] == [("renewal-lead", T0)]
    assert batch.dead == []
    assert batch.next_offsets == {("automation.timers", 0): 12, ("automation.timers", 2): 8}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(b"not avro at all", None, id="garbage"),
        pytest.param(None, "null_value", id="null value"),
        pytest.param(
            codec.encode(
                TimerCommand(kind=TimerCommandKind.SCHEDULE, issued_at=T0, item_key="DEAL:1")
            ),
            "invalid_timer_command",
            id="schedule without action",
        ),
        pytest.param(
            codec.encode(TimerCommand(kind=TimerCommandKind.CANCEL_RULE, issued_at=T0)),
            "invalid_timer_command",
            id="rule cancel without rule id",
        ),
        pytest.param(
            codec.encode(
                TimerCommand(
                    kind=TimerCommandKind.CANCEL_STAGE_ENTRY, issued_at=T0, item_key="DEAL:1"
                )
            ),
            "invalid_timer_command",
            id="stage entry cancel without entry",
        ),
        pytest.param(codec.encode(an_action()), "unexpected_schema", id="an action, not a command"),
    ],
)
def test_a_command_that_can_never_be_applied_becomes_a_dead_letter_and_is_skipped(
    value: bytes | None, reason: str | None
) -> None:
    batch = TimerBatch.of([FakeMessage(value, 41), FakeMessage(codec.encode(a_schedule()), 42)])
    [dead] = batch.dead
    headers = dict(dead.headers())
    assert (dead.value, dead.key, dead.source_offset) == (value, b"DEAL:1", 41)
    assert headers[HEADER_OFFSET] == b"41"
    if reason is not None:
        assert dead.reason == reason == headers[HEADER_REASON].decode()
    assert [s.timer_id for s in batch.schedules] == ["a-1"]
    assert batch.next_offsets == {("automation.timers", 0): 43}
