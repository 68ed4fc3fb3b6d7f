"""Skimming: a message's leading fields read without building the rest, and refused
like the full decoder refuses it when its body is malformed."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automation_core.model import TimerCommand
from runtime import codec
from runtime.codec.framing import SchemaSet, load_older_writers, load_writer_schemas
from runtime.codec.skim import SkimError, record_reader
from scheduler import timer_batch
from tests.unit.strategies import timer_commands
from tests.unit.test_codec_history import OLDER_TIMER_COMMANDS, older, written_with
from tests.unit.test_codec_registry import IDS
from tests.unit.test_scheduler_batch import a_schedule


def full(encoded: bytes) -> timer_batch.TimerEntry:
    """What the scheduler stored before skimming: the command decoded in full."""
    return timer_batch.entry_of(codec.decode_as(encoded, TimerCommand), encoded)


def outcome(decode: Any, encoded: bytes) -> Any:
    try:
        return decode(encoded)
    except codec.InvalidMessage as exc:
        return exc.reason


@given(timer_commands)
def test_a_skimmed_command_is_the_entry_of_the_command_decoded_in_full(
    command: TimerCommand,
) -> None:
    encoded = codec.encode(command)
    assert timer_batch._skim_command()(encoded) is not None  # the fast path, not a fallback
    assert outcome(timer_batch.decode, encoded) == outcome(full, encoded)


@settings(max_examples=30)
@given(timer_commands)
def test_a_command_cut_at_any_byte_is_truncated(command: TimerCommand) -> None:
    encoded = codec.encode(command)
    for cut in range(codec.HEADER_LENGTH, len(encoded)):
        assert outcome(timer_batch.decode, encoded[:cut]) == "truncated", cut


@given(timer_commands, st.binary(min_size=1, max_size=8))
def test_bytes_after_a_command_are_trailing_bytes(command: TimerCommand, extra: bytes) -> None:
    assert outcome(timer_batch.decode, codec.encode(command) + extra) == "trailing_bytes"


@given(timer_commands, st.integers(0, 10**6), st.integers(0, 255))
def test_a_command_with_one_byte_changed_is_read_or_refused_with_a_reason(
    command: TimerCommand, position: int, byte: int
) -> None:
    data = bytearray(codec.encode(command))
    data[codec.HEADER_LENGTH + position % (len(data) - codec.HEADER_LENGTH)] = byte
    try:
        timer_batch.decode(bytes(data))
    except codec.InvalidMessage:
        pass


def test_an_unknown_kind_or_mode_is_refused_as_the_full_decoder_refuses_it() -> None:
    command = a_schedule()
    assert command.action is not None
    avro = codec.records.timer_command_to_avro(command)
    for bad in ({**avro, "kind": "EXPLODE"}, _with_action(avro, mode="sometimes")):
        encoded = codec.encode_dict("TimerCommand", bad)
        assert outcome(timer_batch.decode, encoded) == outcome(full, encoded) == "invalid_record"


@pytest.mark.parametrize("fingerprint", sorted(OLDER_TIMER_COMMANDS))
def test_a_command_of_an_older_version_is_decoded_in_full(fingerprint: str) -> None:
    command = replace(a_schedule(), rule_version=None)
    avro = codec.records.timer_command_to_avro(command)
    encoded = written_with(older("TimerCommand", fingerprint), avro)
    assert timer_batch._skim_command()(encoded) is None
    assert timer_batch.decode(encoded) == full(encoded)


@given(timer_commands)
def test_a_registry_framed_command_is_skimmed(command: TimerCommand) -> None:
    current = load_writer_schemas()
    fresh = SchemaSet(current, load_older_writers(current))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "_schema_set", lambda: fresh)
        codec.write_registry_ids(IDS)
        skim = codec.skimmer("TimerCommand", {"kind": True, "issued_at": True})
        encoded = codec.encode(command)
        assert encoded[:1] == codec.REGISTRY_MAGIC
        assert skim(encoded) == {"kind": command.kind.value, "issued_at": command.issued_at}


# Every Avro type the skim steps over, in a schema of its own: what it reads and where
# it ends must be what fastavro reads.
EVERY_TYPE = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Every",
        "fields": [
            {"name": "b", "type": "boolean"},
            {"name": "i", "type": "int"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "raw", "type": "bytes"},
            {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["R", "G", "B"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "four", "type": ["null", "Four"]},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "text", "type": ["null", "string"]},
            {"name": "n", "type": "long"},
        ],
    }
)
every_value = st.fixed_dictionaries(
    {
        "b": st.booleans(),
        "i": st.integers(-(2**31), 2**31 - 1),
        "f": st.floats(width=32, allow_nan=False),
        "d": st.floats(allow_nan=False),
        "raw": st.binary(max_size=40),
        "fx": st.binary(min_size=4, max_size=4),
        "e": st.sampled_from(["R", "G", "B"]),
        "tags": st.lists(st.text(max_size=5), max_size=70),
        "counts": st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)),
        "four": st.none() | st.binary(min_size=4, max_size=4),
        "at": st.datetimes(
            min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        ).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)),
        "text": st.none() | st.text(max_size=20),
        "n": st.integers(-(2**63), 2**63 - 1),
    }
)


def write(value: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, EVERY_TYPE, value)
    return out.getvalue()


@given(every_value)
def test_the_skim_steps_over_every_avro_type_to_the_end_and_reads_what_is_wanted(
    value: dict[str, Any],
) -> None:
    data = write(value)
    read, end = record_reader(EVERY_TYPE, {"at": True, "text": True, "n": True})(data, 0)
    assert end == len(data)
    assert read == {"at": value["at"], "text": value["text"], "n": value["n"]}


def test_blocks_that_carry_their_size_are_stepped_over() -> None:
    # Avro lets a writer prefix a block with its byte size (a negative count).
    record = _record(("a", {"type": "array", "items": "string"}), ("n", "long"))
    # count -3 (zigzag 5), size 6 bytes, three one-letter strings, end of array; then n = 7
    data = b"\x05\x0c" + b"\x02a\x02b\x02c" + b"\x00" + b"\x0e"
    read = fastavro.schemaless_reader(io.BytesIO(data), record, None)
    assert read == {"a": ["a", "b", "c"], "n": 7}
    assert record_reader(record, {"n": True})(data, 0) == ({"n": 7}, len(data))


def _record(*fields: tuple[str, Any]) -> Any:
    return fastavro.parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": n, "type": t} for n, t in fields]}
    )


@pytest.mark.parametrize(
    ("schema", "data"),
    [
        pytest.param(_record(("b", "boolean")), b"\x02", id="a boolean byte of 2"),
        pytest.param(
            _record(("u", ["null", "string"]), ("x", "long")), b"\x01\x00", id="union branch -1"
        ),
        pytest.param(_record(("x", "long"), ("s", "string")), b"\x00\x03", id="length -2"),
    ],
)
def test_a_malformed_body_is_a_skim_error(schema: Any, data: bytes) -> None:
    with pytest.raises(SkimError):
        record_reader(schema, {})(data, 0)


def _with_action(avro: dict[str, Any], **fields: Any) -> dict[str, Any]:
    name, action = avro["action"]
    return {**avro, "action": (name, {**action, **fields})}
