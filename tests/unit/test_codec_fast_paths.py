"""The codec's fast paths: the Action sliced out of a TimerCommand is the Action's own bytes."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from automation_core.model import Action, Execution, ExecutionStatus, TimerCommand
from runtime import codec
from runtime.codec import records
from scheduler.timer_batch import schedule_of
from tests.unit.strategies import actions, executions, offsets, timer_commands
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


# Any microsecond, any offset: the writer must round a sub-millisecond part as fastavro does.
precise_timestamps = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)


@given(
    executions,
    st.none() | precise_timestamps,
    precise_timestamps,
)
def test_the_execution_writer_writes_fastavros_bytes(
    execution: Execution, due_at: datetime | None, recorded_at: datetime
) -> None:
    for record in (execution, replace(execution, due_at=due_at, recorded_at=recorded_at)):
        writer = codec.writer_schemas()["Execution"]
        out = io.BytesIO()
        out.write(writer.header)
        fastavro.schemaless_writer(out, writer.parsed, records.execution_to_avro(record))
        assert codec.encode(record) == out.getvalue()


@given(executions, precise_timestamps, precise_timestamps)
def test_a_fired_execution_from_its_fields_is_the_execution_encoded(
    execution: Execution, due_at: datetime, recorded_at: datetime
) -> None:
    fired = replace(
        execution,
        status=ExecutionStatus.FIRED,
        action_id=execution.action_id or "a",
        rule_version=execution.rule_version or "v",
        due_at=due_at,
        recorded_at=recorded_at,
        reason=execution.reason or "timer fired lag_ms=0",
    )
    assert fired.action_id and fired.rule_version and fired.due_at and fired.reason
    assert codec.encode_fired(
        rule_id=fired.rule_id,
        item_key=fired.item_key,
        event_id=fired.event_id,
        recorded_at=fired.recorded_at,
        action_id=fired.action_id,
        rule_version=fired.rule_version,
        due_at=fired.due_at,
        reason=fired.reason,
    ) == codec.encode(fired)


def test_the_execution_writer_refuses_a_naive_time_as_the_general_path_does() -> None:
    naive = Execution(
        rule_id="r", item_key="DEAL:1", event_id="e", status=ExecutionStatus.FIRED,
        recorded_at=datetime(2026, 12, 1, 10, 0),
    )  # fmt: skip
    with pytest.raises(ValueError, match="naive"):
        codec.encode(naive)
