"""The Execution record's Avro body, written without fastavro.

Execution is the record written most: one per rule an event reaches (engine) and one per
fired timer (scheduler). Its schema is flat (strings, a timestamp, nullable strings and a
nullable timestamp), so its binary encoding is a few concatenations; this gives the same
bytes as `fastavro.schemaless_writer` (tests/unit/test_codec_fast_paths.py) at about a
fifth of the cost. A change to the Execution schema must change this module too: the
test fails until it does.
"""

from __future__ import annotations

from datetime import datetime

from automation_core.model import Execution
from runtime.codec.avro_writer import epoch_millis, write_long, write_string

_NULL = b"\x00"  # union branch 0 (null)
_SECOND = b"\x02"  # union branch 1


def _millis(value: datetime) -> bytes:
    if value.tzinfo is None:  # as records._timestamp: a naive time is a bug in the domain
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    return write_long(epoch_millis(value))


def execution_body(x: Execution) -> bytes:
    """The Avro binary body of `x` under the current Execution schema (no header)."""
    return fields_body(
        x.rule_id,
        x.item_key,
        x.event_id,
        x.status.value,
        x.recorded_at,
        x.action_id,
        x.rule_version,
        x.due_at,
        x.reason,
    )


def fields_body(
    rule_id: str,
    item_key: str,
    event_id: str,
    status: str,
    recorded_at: datetime,
    action_id: str | None,
    rule_version: str | None,
    due_at: datetime | None,
    reason: str | None,
) -> bytes:
    """`execution_body` of an Execution with these fields, without building one (the
    scheduler writes one per fired timer from the timer's row)."""
    return b"".join(
        (
            write_string(rule_id),
            write_string(item_key),
            write_string(event_id),
            write_string(status),
            _millis(recorded_at),
            _NULL if action_id is None else _SECOND + write_string(action_id),
            _NULL if rule_version is None else _SECOND + write_string(rule_version),
            _NULL if due_at is None else _SECOND + _millis(due_at),
            _NULL if reason is None else _SECOND + write_string(reason),
        )
    )
