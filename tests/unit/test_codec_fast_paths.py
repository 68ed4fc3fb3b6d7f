"""The codec's fast paths write and slice exactly the bytes of the plain fastavro path."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given

from automation_core.model import Action, Execution, TimerCommand
from crm_automation import codec
from crm_automation.codec import records
from processors.timer_batch import schedule_of
from tests.unit.test_codec import actions, executions, timer_commands
from tests.unit.test_scheduler_batch import a_schedule


def _plain_fastavro(name: str, record: dict[str, Any]) -> bytes:
    """Encode with fastavro's own datetime conversion (what the codec did before)."""
    out = io.BytesIO()
    out.write(codec.writer_schemas()[name].header)
    fastavro.schemaless_writer(out, codec.writer_schemas()[name].parsed, record)
    return out.getvalue()


def _with_datetimes(record: Execution) -> dict[str, Any]:
    d = records.execution_to_avro(record)
    d["recorded_at"] = record.recorded_at
    d["due_at"] = record.due_at
    return d


@given(executions)
def test_timestamps_written_as_epoch_millis_give_the_bytes_fastavro_writes_for_datetimes(
    execution: Execution,
) -> None:
    assert codec.encode(execution) == _plain_fastavro("Execution", _with_datetimes(execution))


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

