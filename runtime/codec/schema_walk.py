"""One walk over a parsed Avro schema, for the compiled writers and readers.

`avro_writer` and `avro_reader` build a function per schema node from the same walk:
primitives and logical types from a table, records, arrays, maps and unions from the
functions of their parts. Named types are resolved in the order fastavro's parsed form
defines them (the first use inline, later uses by full name). A type a table lacks is
refused with a ValueError when compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

F = TypeVar("F")


@dataclass(frozen=True)
class Builders(Generic[F]):
    """How to build the function of each kind of schema node."""

    what: str
    """Named in the refusal: "writer" or "reader"."""
    primitives: Mapping[Any, F]
    """By type name, and by (type, logicalType) for logical types."""
    record: Callable[[tuple[tuple[str, F], ...]], F]
    array: Callable[[F], F]
    map: Callable[[F], F]
    union: Callable[[list[Any], list[F]], F]
    """From the union's branches (as in the schema) and their functions."""


def compile_schema(schema: Any, build: Builders[F]) -> F:
    """The function `build` makes for `schema` (fastavro's parsed form)."""
    return _compile(schema, build, {})


def _compile(schema: Any, build: Builders[F], named: dict[str, F]) -> F:
    if isinstance(schema, str):
        if schema in build.primitives:
            return build.primitives[schema]
        if schema in named:  # a named type defined earlier in the schema
            return named[schema]
        raise ValueError(f"no fast {build.what} for type {schema!r}")
    if isinstance(schema, list):
        return build.union(schema, [_compile(b, build, named) for b in schema])
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical is not None:
        if (kind, logical) in build.primitives:
            return build.primitives[kind, logical]
        raise ValueError(f"no fast {build.what} for logical type {logical!r}")
    if kind == "record":
        # Named once its fields are built: a later field may refer to it, not its own.
        fields = tuple((f["name"], _compile(f["type"], build, named)) for f in schema["fields"])
        function = build.record(fields)
        named[schema["name"]] = function
        return function
    if kind == "array":
        return build.array(_compile(schema["items"], build, named))
    if kind == "map":
        return build.map(_compile(schema["values"], build, named))
    if kind in build.primitives:
        return build.primitives[kind]
    raise ValueError(f"no fast {build.what} for type {kind!r}")
