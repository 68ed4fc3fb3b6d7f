"""The compiled Avro readers (runtime.codec.avro_reader) read what fastavro reads, and
every body they find odd is read, or refused with its reason, by fastavro."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import codec
from runtime.codec.avro_reader import Malformed, compile_reader
from runtime.codec.framing import (
    InvalidMessage,
    SchemaSet,
    WriterSchema,
    load_older_writers,
    load_writer_schemas,
)
from tests.unit.strategies import records as domain_records
from tests.unit.test_avro_writer import UNSUPPORTED_KINDS

CURRENT = load_writer_schemas()
COMPILED = SchemaSet(CURRENT, load_older_writers(CURRENT))
FASTAVRO_ONLY = SchemaSet(CURRENT, load_older_writers(CURRENT), compiled=False)


def fastavro_read(writer: WriterSchema, body: bytes) -> Any:
    named = writer.has_record_union
    return fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, None, named, named)


def outcome(schemas: SchemaSet, data: bytes) -> tuple[str, Any]:
    try:
        return ("read", schemas.decode_dict(data))
    except InvalidMessage as refused:
        return ("refused", refused.reason)


@given(domain_records)
def test_every_record_reads_as_fastavro_reads_it(record: codec.TopLevel) -> None:
    data = codec.encode(record)
    writer = codec.writer_schemas()[codec.schema_name_of(data)]
    body = data[len(writer.header) :]
    read = compile_reader(writer.parsed, writer.has_record_union)
    assert read(body, 0) == (fastavro_read(writer, body), len(body))
    assert COMPILED.decode_dict(data) == (writer.name, fastavro_read(writer, body))


@given(domain_records, st.data())
def test_a_cut_or_damaged_body_is_read_or_refused_as_fastavro_alone_does(
    record: codec.TopLevel, data: st.DataObject
) -> None:
    message = codec.encode(record)
    cut = data.draw(st.integers(0, len(message)))
    assert outcome(COMPILED, message[:cut]) == outcome(FASTAVRO_ONLY, message[:cut])
    at = data.draw(st.integers(10, len(message) - 1))
    byte = data.draw(st.integers(0, 255))
    damaged = message[:at] + bytes([byte]) + message[at + 1 :]
    assert outcome(COMPILED, damaged) == outcome(FASTAVRO_ONLY, damaged)
    extra = message + data.draw(st.binary(min_size=1, max_size=3))
    assert (
        outcome(COMPILED, extra) == outcome(FASTAVRO_ONLY, extra) == ("refused", "trailing_bytes")
    )


def read_one(kind: Any, body: bytes) -> Any:
    schema = fastavro.parse_schema(
        {"type": "record", "name": "T", "fields": [{"name": "x", "type": kind}]}
    )
    return compile_reader(schema)(body, 0)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param("boolean", b"\x02", id="boolean-byte-2"),
        pytest.param("string", b"\x03abc", id="negative-length"),
        pytest.param("string", b"\x08abc", id="string-past-the-end"),
        pytest.param("long", b"\xff" * 11, id="long-of-11-bytes"),
        pytest.param(["null", "string"], b"\x04", id="union-branch-past-the-end"),
        pytest.param(["null", "string"], b"\x80\x00", id="non-minimal-branch"),
        pytest.param(["null", "string", "long"], b"\x06", id="branch-3-of-3"),
    ],
)
def test_what_it_finds_odd_it_leaves_to_fastavro(kind: Any, body: bytes) -> None:
    with pytest.raises(Malformed):
        read_one(kind, body)


def test_blocks_with_their_size_in_bytes_are_read() -> None:
    # count -2 (zig-zag 3), size 4 bytes (8), two strings, then the end of the blocks
    assert read_one({"type": "array", "items": "string"}, b"\x03\x08\x02a\x02b\x00") == (
        {"x": ["a", "b"]},
        7,
    )
    assert read_one({"type": "map", "values": "long"}, b"\x01\x06\x02k\x04\x00") == (
        {"x": {"k": 2}},
        6,
    )


@UNSUPPORTED_KINDS
def test_a_schema_with_a_type_it_has_no_reader_for_is_refused_when_compiled(kind: Any) -> None:
    with pytest.raises(ValueError, match="no fast reader"):
        read_one(kind, b"")
