"""The wire codec: domain records <-> Avro bytes in either wire format.

By default every topic value is `C3 01` + the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema's Parsing Canonical Form + the Avro binary body
(single-object encoding, docs/wire-format.md). The fingerprint says which record a
message holds, so one topic (`automation.rules`) can carry both `Rule` and `Pipeline`.
With the registry wire format configured (runtime.wire_format), values are written as
`00` + the schema's 4-byte registry id + the same body; both are always read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from fastavro.schema import to_parsing_canonical_form

from automation_core.model import Action, Execution, ExecutionStatus, TimerCommand
from runtime.codec.avro_reader import read_long
from runtime.codec.execution_writer import execution_body, fields_body
from runtime.codec.framing import (
    HEADER_LENGTH,
    MAGIC,
    REGISTRY_HEADER_LENGTH,
    REGISTRY_MAGIC,
    InvalidMessage,
    SchemaSet,
    WriterSchema,
    crc64_avro_fingerprint,
    load_older_writers,
    load_writer_schemas,
)
from runtime.codec.records import FROM_AVRO, TO_AVRO, TopLevel
from runtime.codec.skim import SkimError, record_reader

__all__ = [
    "FINGERPRINTS",
    "HEADER_LENGTH",
    "MAGIC",
    "REGISTRY_HEADER_LENGTH",
    "REGISTRY_MAGIC",
    "InvalidMessage",
    "RegistryLookup",
    "Skimmer",
    "TopLevel",
    "WriterSchema",
    "crc64_avro_fingerprint",
    "decode",
    "decode_as",
    "decode_dict",
    "embedded_action",
    "encode",
    "encode_dict",
    "fingerprints",
    "header",
    "read_registry_schemas_with",
    "schema_name_of",
    "skimmer",
    "write_registry_ids",
    "writer_schemas",
]

T = TypeVar("T", bound=TopLevel)

# Conversion failures of a body that fastavro did read (an unknown enum value, a
# malformed decimal or JSON): the bytes are well-formed Avro but not a valid record.
_CONVERSION_ERRORS = (ValueError, ArithmeticError, TypeError, KeyError)


@cache
def _schema_set() -> SchemaSet:
    # Parsed once per process, on first use rather than at import.
    current = load_writer_schemas()
    return SchemaSet(current, load_older_writers(current))


def writer_schemas() -> Mapping[str, WriterSchema]:
    """Every top-level writer schema by short name (StageChanged, Rule, ...)."""
    return _schema_set().by_name


def fingerprints() -> dict[str, bytes]:
    """Schema short name -> its 8-byte fingerprint as written after `C3 01`."""
    return {name: w.fingerprint for name, w in _schema_set().by_name.items()}


def header(schema_name: str) -> bytes:
    """What `encode` writes before a body of `schema_name`, in the configured wire format."""
    return _schema_set().headers[schema_name]


RegistryLookup = Callable[[int], "str | None"]
"""A registry schema id -> the schema's text; None when the registry has no such id."""


def read_registry_schemas_with(lookup: RegistryLookup) -> None:
    """Read registry-framed messages (`00` + schema id) with `lookup`: id -> schema text,
    None for an id the registry does not know (runtime.wire_format sets it up)."""
    _schema_set().registry_lookup = lookup


def write_registry_ids(ids: Mapping[str, int]) -> None:
    """Encode in the registry wire format from now on, with each schema's registered id."""
    _schema_set().write_registry_ids(ids)


def encode(record: TopLevel) -> bytes:
    """Encode a top-level domain record (StageChanged, Rule, Pipeline, TimerCommand, ...)."""
    if type(record) is Execution:  # the most frequent record: its own writer
        return _schema_set().headers["Execution"] + execution_body(record)
    try:
        name, to_avro = TO_AVRO[type(record)]
    except KeyError:
        raise TypeError(f"not a top-level record: {type(record).__name__}") from None
    return _schema_set().encode_dict(name, to_avro(record))


def encode_fired(
    *,
    rule_id: str,
    item_key: str,
    event_id: str,
    recorded_at: datetime,
    action_id: str,
    rule_version: str,
    due_at: datetime,
    reason: str,
) -> bytes:
    """`encode(Execution(status=FIRED, ...))` of these fields, without building the
    Execution: the scheduler writes one for every timer it fires."""
    body = fields_body(
        rule_id,
        item_key,
        event_id,
        ExecutionStatus.FIRED.value,
        recorded_at,
        action_id,
        rule_version,
        due_at,
        reason,
    )
    return _schema_set().headers["Execution"] + body


def decode(data: bytes) -> TopLevel:
    """Decode any known record; raise `InvalidMessage` for bytes that never will decode."""
    name, avro = _schema_set().decode_dict(data)
    try:
        return FROM_AVRO[name](avro)
    except _CONVERSION_ERRORS as exc:
        raise InvalidMessage("invalid_record", f"{name} is not valid: {exc}") from exc


def decode_as(data: bytes, cls: type[T]) -> T:
    """Decode a record that must be a `cls`; another known record is `unexpected_schema`."""
    writer = _schema_set().writer_of(data)
    if writer.name != cls.__name__:
        raise InvalidMessage(
            "unexpected_schema", f"expected {cls.__name__}, message holds {writer.name}"
        )
    record = decode(data)
    if not isinstance(record, cls):  # the fingerprint check makes this unreachable
        raise InvalidMessage("unexpected_schema", f"decoded {type(record).__name__}")
    return record


def embedded_action(command: bytes) -> bytes | None:
    """The Action inside an encoded TimerCommand, as an Action message, without re-encoding.

    Byte for byte what `encode(decode_as(command, TimerCommand).action)` returns (the
    Avro binary encoding of a value is unique), at a fraction of the cost: the scheduler
    stores every scheduled action this way. `action` is the command's last field, so its
    body is the tail of the message after the fields before it, which are skipped here.
    Call only on a command that `decode_as` accepted; None when it carries no action.
    """
    schemas = _schema_set()
    writer, pos = schemas.frame_of(command)
    if writer.name != "TimerCommand":
        raise InvalidMessage("unexpected_schema", "not a TimerCommand")
    if writer.fingerprint not in schemas.by_fingerprint:  # a registry schema not of ours
        action = decode_as(command, TimerCommand).action
        return None if action is None else encode(action)
    for skip in _fields_before_action(writer.fingerprint):
        pos = skip(command, pos)
    branch, pos = read_long(command, pos)  # action: ["null", Action]
    if not branch:
        return None
    # The Action version the command was written with (an older command holds an older
    # Action: the header names that one, and readers resolve it like any older message).
    action_header = _embedded_action_header(writer.fingerprint)
    if action_header == schemas.by_name["Action"].header:
        return schemas.headers["Action"] + command[pos:]  # in the configured wire format
    older = action_header + command[pos:]
    if schemas.headers["Action"] == schemas.by_name["Action"].header:
        return older
    # The registry wire format names only the current schema's id: convert the rare
    # older action instead of registering old versions.
    return encode(decode_as(older, Action))


Skip = Callable[[bytes, int], int]


@cache
def _fields_before_action(command_fingerprint: bytes) -> tuple[Skip, ...]:
    """How to step over each field a TimerCommand version writes before its action (the
    last field): strings, timestamps, and unions of null with either."""
    writer = _schema_set().by_fingerprint[command_fingerprint]
    skips: list[Skip] = []
    for field in writer.parsed["fields"]:
        if field["name"] == "action":
            return tuple(skips)
        kind = field["type"]
        if isinstance(kind, list):
            (inner,) = (k for k in kind if k != "null")
            skips.append(_skip_optional(_skip_of(inner)))
        else:
            skips.append(_skip_of(kind))
    raise ValueError(f"TimerCommand {command_fingerprint.hex()} has no action field")


def _skip_of(kind: Any) -> Skip:
    name = kind.get("type") if isinstance(kind, dict) else kind
    if name == "string":
        return _skip_string
    if name == "long":
        return _skip_long
    raise ValueError(f"no fast skip for a TimerCommand field of type {kind!r}")


def _skip_optional(skip: Skip) -> Skip:
    def optional(data: bytes, pos: int) -> int:
        branch, pos = read_long(data, pos)
        return skip(data, pos) if branch else pos

    return optional


@cache
def _embedded_action_header(command_fingerprint: bytes) -> bytes:
    writer = _schema_set().by_fingerprint[command_fingerprint]
    (field,) = (f for f in writer.parsed["fields"] if f["name"] == "action")
    (action,) = (branch for branch in field["type"] if branch != "null")
    header = MAGIC + crc64_avro_fingerprint(to_parsing_canonical_form(action))
    _schema_set().writer_of(header)  # a version of Action the codec knows, or it raises
    return header


def _skip_long(data: bytes, pos: int) -> int:
    return read_long(data, pos)[1]


def _skip_string(data: bytes, pos: int) -> int:
    length, pos = read_long(data, pos)
    return pos + length


Skimmer = Callable[[bytes], "dict[str, Any] | None"]


def skimmer(schema_name: str, wanted: Mapping[str, Any]) -> Skimmer:
    """A reader of the `wanted` fields of messages of `schema_name` (runtime.codec.skim):
    message -> dict of those fields, or None for a message this fast path does not read
    (another schema or an older version of it: decode those in full). A body the
    skim finds malformed raises `InvalidMessage` with the full decoder's reason."""
    schemas = _schema_set()
    current = schemas.by_name[schema_name]
    read = record_reader(current.parsed, wanted)

    def skim(data: bytes) -> dict[str, Any] | None:
        for header in (current.header, schemas.headers[schema_name]):
            if data[: len(header)] == header:
                break
        else:
            return None
        try:
            values, end = read(data, len(header))
            if end != len(data):
                raise SkimError("trailing bytes")
        except (ValueError, IndexError, OverflowError):  # SkimError, bad UTF-8, a date past 9999
            schemas.decode_dict(data)  # raises the reason: truncated, trailing bytes, ...
            return None  # the full decoder reads what the skim refused: let it decide
        return dict(values)

    return skim


def schema_name_of(data: bytes) -> str:
    """The short schema name in a message's header (no body decoding)."""
    return _schema_set().writer_of(data).name


def encode_dict(schema_name: str, record: Mapping[str, Any]) -> bytes:
    """Encode an Avro dict of a top-level schema (unions of records as (fullname, dict))."""
    return _schema_set().encode_dict(schema_name, record)


def decode_dict(data: bytes) -> tuple[str, dict[str, Any]]:
    """The schema short name and the Avro dict of a message, no domain conversion."""
    return _schema_set().decode_dict(data)


def __getattr__(name: str) -> Any:
    # `codec.FINGERPRINTS` reads like a constant but loads the schemas only when asked.
    if name == "FINGERPRINTS":
        return fingerprints()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
