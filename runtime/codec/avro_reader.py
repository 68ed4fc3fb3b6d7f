"""Avro binary readers compiled once from a parsed schema: the counterpart of avro_writer.

`fastavro.schemaless_reader` interprets the writer schema for every message it reads and
sets up a decoder around a file object first; for the engine, which decodes every stage
change it consumes, that was most of the decoding time. `compile_reader` walks the schema
once and returns a function of closures, one per field, that reads a body into the dict
fastavro returns for it (timestamps as aware UTC datetimes, dates as dates; with
`record_names`, a record in a union of several records as `(fullname, dict)`, as
fastavro's `return_record_name` with its override).

It reads only a message written with the schema it was compiled from (no schema
resolution: the codec keeps fastavro for older writers) and only the types the project's
schemas use: null, boolean, int, long, string, timestamp-millis, date, records, arrays,
maps and unions; a schema with anything else is refused when compiled. Any body it finds
odd (cut short, a length or union branch out of range, a boolean byte other than 0 or 1,
text that is not UTF-8, ...) raises `Malformed`, and the caller reads that message with
fastavro, which either reads it its own way or names what is wrong: what is accepted and
what comes out never differ from fastavro's (tests/unit/test_avro_reader.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from runtime.codec.schema_walk import Builders, compile_schema

Read = Callable[[bytes, int], tuple[Any, int]]
"""Reads one value at a position of a body: the value and the position after it."""


class Malformed(ValueError):
    """A body this reader does not read as fastavro would: let fastavro read it."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_PRIMITIVE_TYPES = frozenset(
    ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
)


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """An Avro long (zig-zag varint) at `pos`, and the position after it."""
    byte = data[pos]
    if byte < 0x80:  # most lengths, branches and counts: one byte
        return (byte >> 1) ^ -(byte & 1), pos + 1
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise Malformed("a long longer than 10 bytes")


def _string(data: bytes, pos: int) -> tuple[str, int]:
    byte = data[pos]
    if byte < 0x80 and not byte & 1:  # a length of 0-63: one byte
        start = pos + 1
        end = start + (byte >> 1)
    else:
        length, start = read_long(data, pos)
        if length < 0:
            raise Malformed("negative length")
        end = start + length
    if end > len(data):
        raise Malformed("string past the end")
    return data[start:end].decode(), end  # UnicodeDecodeError is a ValueError: fastavro's call


def _null(_data: bytes, pos: int) -> tuple[None, int]:
    return None, pos


def _boolean(data: bytes, pos: int) -> tuple[bool, int]:
    byte = data[pos]
    if byte > 1:  # fastavro reads any other byte as True: its call
        raise Malformed("boolean byte")
    return byte == 1, pos + 1


def _timestamp_millis(data: bytes, pos: int) -> tuple[datetime, int]:
    millis, pos = read_long(data, pos)
    return _EPOCH + timedelta(microseconds=millis * 1000), pos  # fastavro's arithmetic


def _date(data: bytes, pos: int) -> tuple[date, int]:
    days, pos = read_long(data, pos)
    return date.fromordinal(days + _EPOCH_ORDINAL), pos


_PRIMITIVES: dict[Any, Read] = {
    "null": _null,
    "boolean": _boolean,
    "int": read_long,
    "long": read_long,
    "string": _string,
    ("long", "timestamp-millis"): _timestamp_millis,
    ("int", "date"): _date,
}


def compile_reader(schema: Any, record_names: bool = False) -> Read:
    """The reader of bodies written with `schema` (fastavro's parsed form); with
    `record_names`, records in unions of several records read as `(fullname, dict)`."""

    def union(branches: list[Any], readers: list[Read]) -> Read:
        return _union(branches, readers, record_names)

    return compile_schema(schema, Builders("reader", _PRIMITIVES, _record, _array, _map, union))


def _record(fields: tuple[tuple[str, Read], ...]) -> Read:
    def record(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
        values = {}
        for name, read in fields:
            values[name], pos = read(data, pos)
        return values, pos

    return record


def _count(data: bytes, pos: int) -> tuple[int, int]:
    """A block's item count; a block that also gives its size in bytes has it skipped."""
    count, pos = read_long(data, pos)
    if count < 0:
        count = -count
        pos = read_long(data, pos)[1]
    return count, pos


def _array(read_item: Read) -> Read:
    def array(data: bytes, pos: int) -> tuple[list[Any], int]:
        items = []
        count, pos = _count(data, pos)
        while count:
            for _ in range(count):
                item, pos = read_item(data, pos)
                items.append(item)
            count, pos = _count(data, pos)
        return items, pos

    return array


def _map(read_value: Read) -> Read:
    def map_(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
        values = {}
        count, pos = _count(data, pos)
        while count:
            for _ in range(count):
                key, pos = _string(data, pos)
                values[key], pos = read_value(data, pos)
            count, pos = _count(data, pos)
        return values, pos

    return map_


def _is_record_like(branch: Any) -> bool:
    """What fastavro counts as a record in a union: a record, or any named type's name."""
    if isinstance(branch, dict):
        return bool(branch["type"] == "record")
    return isinstance(branch, str) and branch not in _PRIMITIVE_TYPES


def _union(branches: list[Any], readers: list[Read], record_names: bool) -> Read:
    records = [_is_record_like(b) for b in branches]
    if record_names and sum(records) > 1:
        readers = [
            _named(b["name"] if isinstance(b, dict) else b, r) if is_record else r
            for b, r, is_record in zip(branches, readers, records, strict=True)
        ]
    steps = tuple(readers)
    if len(steps) == 2 and branches[0] == "null":
        read_value = steps[1]

        def optional(data: bytes, pos: int) -> tuple[Any, int]:  # ["null", X]: most here
            branch = data[pos]
            if branch == 0:
                return None, pos + 1
            if branch == 2:
                return read_value(data, pos + 1)
            raise Malformed(f"union branch byte {branch}")

        return optional

    def union(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(data, pos)
        if not 0 <= index < len(steps):
            raise Malformed(f"union branch {index} of {len(steps)}")
        return steps[index](data, pos)

    return union


def _named(fullname: str, read: Read) -> Read:
    def named(data: bytes, pos: int) -> tuple[tuple[str, Any], int]:
        value, pos = read(data, pos)
        return (fullname, value), pos

    return named
