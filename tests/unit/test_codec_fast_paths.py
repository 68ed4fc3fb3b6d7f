"""The codec's fast paths: the Action sliced out of a TimerCommand is the Action's own bytes."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given

from automation_core.model import Action, TimerCommand
from runtime import codec
from runtime.codec import records
from scheduler.timer_batch import schedule_of
from tests.unit.test_codec import actions, timer_commands
from tests.unit.test_scheduler_batch import a_schedule


@given(timer_commands)
def test_the_action_sliced_out_of_a_timer_command_is_the_action_encoded_on_its_own(
    command: TimerCommand,
) -> None:
    encoded = codec.encode(command)
    sliced = codec.embedded_action(encoded)
    if command.action is None:
        assert sliced is None
    else:
        assert sliced == codec.encode(command.action)
        assert codec.decode_as(sliced, Action) == codec.decode_as(encoded, TimerCommand).action


@given(actions)
def test_slicing_refuses_a_message_that_is_not_a_timer_command(action: Action) -> None:
    with pytest.raises(codec.InvalidMessage) as caught:
        codec.embedded_action(codec.encode(action))
    assert caught.value.reason == "unexpected_schema"


def test_a_schedule_with_and_without_its_message_stores_the_same_action_bytes() -> None:
    command = a_schedule()
    assert schedule_of(command, codec.encode(command)).action == schedule_of(command).action


@given(timer_commands)
def test_naming_the_union_branches_writes_the_bytes_of_plain_dicts(command: TimerCommand) -> None:
    avro = records.timer_command_to_avro(command)
    plain = _without_branch_names(avro)
    out = io.BytesIO()
    writer = codec.writer_schemas()["TimerCommand"]
    out.write(writer.header)
    fastavro.schemaless_writer(out, writer.parsed, plain)
    assert codec.encode(command) == out.getvalue()


def _without_branch_names(value: Any) -> Any:
    """Tuple notation replaced by the bare record, except the payload (several records)."""
    if isinstance(value, dict):
        return {k: v if k == "payload" else _without_branch_names(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return _without_branch_names(value[1])
    if isinstance(value, list):
        return [_without_branch_names(v) for v in value]
    return value
