"""Reading a message's leading fields without building the rest of it.

The scheduler stores a timer command as a few ids and times plus the action's bytes; a
full decode (fastavro, then domain objects for the item, contacts and payload it never
looks at) was four fifths of its ingest time. A skim walks the whole Avro body, so a
truncated or malformed one is still refused, but builds only the fields asked for:
strings, longs (timestamp-millis as aware datetimes) and unions of them, in top-level
fields and in the fields of a top-level record field. Everything else is stepped over.

What a skim does not check is the content of what it steps over: the text encoding of
its strings, its enum symbols, decimals and JSON. Those are checked where the full
record is decoded (for a stored action: by each sink when it fires, which sends a bad
one to its dead-letter topic with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.codec.avro_reader import Malformed, read_long

Read = Callable[[bytes, int], tuple[Any, int]]
"""Reads one value at a position: the value (None when stepped over) and the next position."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SkimError(Malformed):
    """The body does not follow its schema (the full decoder tells how); a long of more
    than 10 bytes is refused by the shared varint reader as `Malformed`."""


def record_reader(schema: Any, wanted: Mapping[str, Any]) -> Read:
    """A reader of a record of `schema` (fastavro's parsed form) that returns a dict of
    the fields named in `wanted`: a field maps to True (its value) or to the `wanted`
    mapping of the record it holds (directly or as a union branch)."""
    named = schema.get("__named_schemas", {})
    return _record(schema, named, wanted)


def _record(schema: Mapping[str, Any], named: Mapping[str, Any], wanted: Mapping[str, Any]) -> Read:
    steps: list[tuple[str | None, Read]] = []
    for field in schema["fields"]:
        want = wanted.get(field["name"])
        steps.append((field["name"] if want else None, _reader(field["type"], named, want)))

    def read(data: bytes, pos: int) -> tuple[Any, int]:
        values: dict[str, Any] = {}
        for name, step in steps:
            value, pos = step(data, pos)
            if name is not None:
                values[name] = value
        return values, pos

    return read


def _reader(schema: Any, named: Mapping[str, Any], want: Any) -> Read:
    """Reads a value of `schema`: built when `want` (True, or a record's wanted fields)."""
    if isinstance(schema, list):
        branches = tuple(_reader(branch, named, want) for branch in schema)
        return _union(branches)
    if isinstance(schema, str):
        if schema in named:
            return _reader(named[schema], named, want)
        kind, logical = schema, None
    else:
        kind, logical = schema["type"], schema.get("logicalType")
    if kind == "record":
        if isinstance(want, Mapping):
            return _record(schema, named, want)
        return _skip_record(schema, named)
    if kind in ("string", "bytes"):
        return _string if want and kind == "string" else _skip_bytes
    if kind in ("long", "int"):
        if want and logical == "timestamp-millis":
            return _timestamp_millis
        return _long
    if kind == "null":
        return _null
    if kind == "boolean":
        return _boolean
    if kind in ("float", "double", "fixed"):
        return _fixed(4 if kind == "float" else 8 if kind == "double" else schema["size"])
    if kind == "enum":
        return _enum(len(schema["symbols"]))
    if kind == "array":
        return _blocks((_reader(schema["items"], named, None),))
    if kind == "map":
        return _blocks((_skip_bytes, _reader(schema["values"], named, None)))
    raise ValueError(f"no skim for Avro type {kind!r}")


def _skip_record(schema: Mapping[str, Any], named: Mapping[str, Any]) -> Read:
    steps = tuple(_reader(field["type"], named, None) for field in schema["fields"])

    def skip(data: bytes, pos: int) -> tuple[Any, int]:
        for step in steps:
            pos = step(data, pos)[1]
        return None, pos

    return skip


def _union(branches: tuple[Read, ...]) -> Read:
    def read(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(data, pos)
        if not 0 <= index < len(branches):
            raise SkimError(f"union branch {index} of {len(branches)}")
        return branches[index](data, pos)

    return read


def _blocks(items: tuple[Read, ...]) -> Read:
    def skip(data: bytes, pos: int) -> tuple[Any, int]:
        while True:
            count, pos = read_long(data, pos)
            if count == 0:
                return None, pos
            if count < 0:  # a block with its size in bytes
                count = -count
                pos = read_long(data, pos)[1]
            for _ in range(count):
                for item in items:
                    pos = item(data, pos)[1]

    return skip


def _fixed(size: int) -> Read:
    def skip(data: bytes, pos: int) -> tuple[Any, int]:
        return None, _within(data, pos, size)

    return skip


def _enum(symbols: int) -> Read:
    def skip(data: bytes, pos: int) -> tuple[Any, int]:
        index, pos = read_long(data, pos)
        if not 0 <= index < symbols:
            raise SkimError(f"enum index {index} of {symbols}")
        return None, pos

    return skip


def _null(_data: bytes, pos: int) -> tuple[Any, int]:
    return None, pos


def _boolean(data: bytes, pos: int) -> tuple[Any, int]:
    if data[pos] > 1:
        raise SkimError(f"boolean byte {data[pos]}")
    return None, pos + 1


def _long(data: bytes, pos: int) -> tuple[Any, int]:
    return read_long(data, pos)


def _timestamp_millis(data: bytes, pos: int) -> tuple[Any, int]:
    millis, pos = read_long(data, pos)
    return _EPOCH + timedelta(milliseconds=millis), pos


def _string(data: bytes, pos: int) -> tuple[Any, int]:
    length, pos = read_long(data, pos)
    end = _within(data, pos, length)
    return data[pos:end].decode(), end


def _skip_bytes(data: bytes, pos: int) -> tuple[Any, int]:
    length, pos = read_long(data, pos)
    return None, _within(data, pos, length)


def _within(data: bytes, pos: int, length: int) -> int:
    """The end of a value of `length` bytes at `pos`, checked against the body."""
    end = pos + length
    if length < 0 or end > len(data):
        raise SkimError(f"{length} bytes at byte {pos} of {len(data)}")
    return end
