"""The consume loop's decoding: records in order with their messages, the rest dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from automation_core.model import Action, Execution
from runtime import codec
from runtime.consume import decode_as, decode_batch
from tests.unit.test_scheduler_batch import a_schedule


@dataclass
class Message:
    _value: bytes | None
    _offset: int
    _partition: int = 0

    def topic(self) -> str:
        return "automation.actions"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"DEAL:1"

    def value(self) -> bytes | None:
        return self._value


def test_undecodable_and_unexpected_records_become_dead_letters_and_the_offsets_pass_them() -> None:
    timer_command = codec.encode(a_schedule())  # a valid record, of a type not expected here
    action = a_schedule().action
    assert action is not None
    messages = [
        Message(codec.encode(action), 7),
        Message(b"not avro", 8),
        Message(None, 9),
        Message(timer_command, 10),
        Message(codec.encode(action), 3, _partition=1),
    ]

    batch = decode_batch(messages, decode_as(Action, Execution))

    assert batch.records == [action, action]
    assert [m.offset() for m in batch.messages] == [7, 3]
    assert [(d.source_offset, d.reason) for d in batch.dead] == [
        (8, "bad_magic"),
        (9, "null_value"),
        (10, "unexpected_record"),
    ]
    assert batch.next_offsets == {("automation.actions", 0): 11, ("automation.actions", 1): 4}


def test_a_dead_letter_carries_kafka_connects_error_headers_with_the_stack_trace() -> None:
    [letter] = decode_batch([Message(b"not avro", 8)], decode_as(Action)).dead
    headers = dict(letter.headers())
    assert headers["__connect.errors.topic"] == b"automation.actions"
    assert headers["__connect.errors.partition"] == b"0"
    assert headers["__connect.errors.offset"] == b"8"
    assert headers["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert headers["__connect.errors.class.name"] == b"runtime.codec"
    assert headers["__connect.errors.exception.class.name"] == b"InvalidMessage"
    trace = headers["__connect.errors.exception.stacktrace"]
    assert isinstance(trace, bytes)
    assert trace.startswith(b"Traceback") and b"InvalidMessage" in trace
    assert "__connect.errors.connector.name" not in headers  # stamped when it is sent
