"""Avro binary writers compiled once from a parsed schema, for the codec's Avro dicts.

`fastavro.schemaless_writer` interprets the schema for every message it writes: for the
engine's actions and timer commands (a copied deal carries the whole item, a planned
activity its clients) that interpretation is most of the encoding time. `compile_writer`
walks the schema once and returns a function of closures, one per field, that turns an
Avro dict (the `records.*_to_avro` form: unions of records in fastavro's
`(fullname, dict)` tuple notation) into the same bytes as fastavro.

It covers the types the project's schemas use: null, boolean, int, long, string, the
timestamp-millis and date logical types, records, arrays, maps and unions; a schema with
anything else is refused when compiled. A value it does not take in exactly fastavro's way
(a naive datetime, an ISO date string, a record without a field that has a default, a
union value without a branch name where the branch is not plain from its Python type)
raises `Unsupported`, and the caller writes that message with fastavro instead, so
what is accepted and the bytes written never differ from fastavro's
(tests/unit/test_avro_writer.py compares them on generated records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from runtime.codec.schema_walk import Builders, compile_schema

Writer = Callable[[Any], bytes]


class Unsupported(TypeError):
    """A value this writer does not write as fastavro would: let fastavro write it (a
    TypeError where it reaches a caller: `execution_writer` has no fastavro behind it)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_SMALL = {n: bytes([(n << 1) ^ (n >> 63)]) for n in range(-64, 64)}
"""The zig-zag varint of -64..63: one byte."""
_SHORT = tuple(_SMALL[n] for n in range(64))
"""The same for 0..63 by index: the length of most strings."""
_EMPTY_BLOCKS = b"\x00"  # an array or map with no items: just the end marker


def write_long(n: int) -> bytes:
    """Avro's zig-zag varint of a 64-bit integer."""
    small = _SMALL.get(n)
    if small is not None and type(n) is int:
        return small
    if type(n) is not int or not _LONG_MIN <= n <= _LONG_MAX:
        raise Unsupported(f"not a long: {type(n).__name__}")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(n: int) -> bytes:
    if type(n) is not int or not _INT_MIN <= n <= _INT_MAX:
        raise Unsupported(f"not an int: {type(n).__name__}")
    return write_long(n)


def write_string(value: str) -> bytes:
    try:
        data = value.encode()  # as fastavro: a str, or a subclass of it
    except AttributeError:
        raise Unsupported(f"not a string: {type(value).__name__}") from None
    size = len(data)
    return (_SHORT[size] if size < 64 else write_long(size)) + data


def _null(value: None) -> bytes:
    if value is not None:
        raise Unsupported("not null")
    return b""


def _boolean(value: bool) -> bytes:
    if value is True:
        return b"\x01"
    if value is False:
        return b"\x00"
    raise Unsupported(f"not a boolean: {type(value).__name__}")


def epoch_millis(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, rounded as fastavro rounds."""
    delta = value - _EPOCH  # fastavro's arithmetic, so sub-millisecond parts round alike
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _timestamp_millis(value: datetime | int) -> bytes:
    if type(value) is datetime and value.tzinfo is not None:
        return write_long(epoch_millis(value))
    if type(value) is int:
        return write_long(value)
    raise Unsupported(f"not an aware datetime: {type(value).__name__}")  # naive: local time


def _date(value: date | int) -> bytes:
    if isinstance(value, date):  # a datetime too, as fastavro: its day
        return write_long(value.toordinal() - _EPOCH_ORDINAL)
    if type(value) is int:
        return write_long(value)
    raise Unsupported(f"not a date: {type(value).__name__}")


_PRIMITIVES: dict[Any, Writer] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": write_long,
    "string": write_string,
    ("long", "timestamp-millis"): _timestamp_millis,
    ("int", "date"): _date,
}


def compile_writer(schema: Any) -> Writer:
    """The writer of `schema` (as fastavro's `parse_schema` or `load_schema` returns it)."""
    return compile_schema(schema, _BUILDERS)


def _record(fields: tuple[tuple[str, Writer], ...]) -> Writer:
    def record(value: Mapping[str, Any]) -> bytes:
        try:
            return b"".join([write(value[name]) for name, write in fields])
        except KeyError as missing:  # fastavro would write the field's default
            raise Unsupported(f"no field {missing}") from None
        except TypeError as not_a_mapping:
            raise Unsupported(str(not_a_mapping)) from None

    return record


def _array(write_item: Writer) -> Writer:
    def array(value: Any) -> bytes:
        if type(value) is not list and type(value) is not tuple:
            raise Unsupported(f"not a list: {type(value).__name__}")
        if not value:
            return _EMPTY_BLOCKS
        return b"".join([write_long(len(value)), *[write_item(v) for v in value], _EMPTY_BLOCKS])

    return array


def _map(write_value: Writer) -> Writer:
    def map_(value: Any) -> bytes:
        if type(value) is not dict:
            raise Unsupported(f"not a dict: {type(value).__name__}")
        if not value:
            return _EMPTY_BLOCKS
        parts = [write_long(len(value))]
        for key, item in value.items():
            parts.append(write_string(key))
            parts.append(write_value(item))
        parts.append(_EMPTY_BLOCKS)
        return b"".join(parts)

    return map_


# The Python types that pick a union branch without a branch name, as fastavro's
# validation does for these branch types; other branches must be named (tuple notation).
_PLAIN_BRANCHES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
}


def _union(branches: list[Any], writers: list[Writer]) -> Writer:
    general = _general_union(branches, writers)
    if len(branches) != 2 or branches[0] != "null":
        return general
    write_value = writers[1]

    def optional(value: Any) -> bytes:  # ["null", X]: most unions here
        if value is None:
            return b"\x00"
        if type(value) is tuple:
            return general(value)
        return b"\x02" + write_value(value)

    return optional


def _general_union(branches: list[Any], writers: list[Writer]) -> Writer:
    by_name: dict[str, tuple[bytes, Writer]] = {}
    plain: dict[type, tuple[bytes, Writer]] = {}
    for index, (branch, write) in enumerate(zip(branches, writers, strict=True)):
        by_name[_branch_name(branch)] = (write_long(index), write)
        for python_type in _PLAIN_BRANCHES.get(_branch_kind(branch), ()):
            plain.setdefault(python_type, (write_long(index), write))
    # ["null", record]: a dict is the record (fastavro validates it against the one branch).
    records = [i for i, b in enumerate(branches) if _branch_kind(b) == "record"]
    if len(records) == 1 and len(branches) == 2 and "null" in branches:
        plain[dict] = (write_long(records[0]), writers[records[0]])

    def union(value: Any) -> bytes:
        if type(value) is tuple:  # fastavro's tuple notation: (branch name, value)
            try:
                index, write = by_name[value[0]]
            except (KeyError, IndexError, TypeError):
                raise Unsupported("no such union branch") from None
            return index + write(value[1])
        try:
            index, write = plain[type(value)]
        except KeyError:
            raise Unsupported(f"no plain union branch for {type(value).__name__}") from None
        return index + write(value)

    return union


def _branch_kind(branch: Any) -> str:
    if isinstance(branch, dict):
        return "logical" if "logicalType" in branch else str(branch["type"])
    return str(branch)


def _branch_name(branch: Any) -> str:
    """What fastavro's tuple notation names a branch by: a named type's full name, else
    its type."""
    if isinstance(branch, dict):
        return str(branch.get("name", branch["type"]))
    return str(branch)


_BUILDERS = Builders("writer", _PRIMITIVES, _record, _array, _map, _union)
