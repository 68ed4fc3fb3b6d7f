"""Avro single-object encoding: `C3 01`, the writer schema's fingerprint, the body."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

import schemas

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8
NAMESPACE = "crm.automation"
# The records that travel on a topic as a message value; the others (Item, Contact,
# Company) only ever appear inside them.
TOP_LEVEL = ("StageChanged", "Rule", "Pipeline", "TimerCommand", "Action", "Execution")


class InvalidMessage(Exception):
    """Bytes that can never be decoded; `reason` is a short fixed code (metric label, DLQ header).

    Codes: `bad_magic`, `unknown_fingerprint`, `truncated`, `trailing_bytes`,
    `invalid_record`.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def reason_code(self) -> str:
        return self.reason


@dataclass(frozen=True)
class WriterSchema:
    """One top-level schema, parsed once, with its single-object header."""

    name: str
    parsed: Any
    canonical_form: str
    fingerprint: bytes
    has_record_union: bool
    """A union of several records inside: read them as (fullname, dict) to know which."""

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


def crc64_avro_fingerprint(canonical_form: str) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint, as single-object encoding writes it."""
    # fastavro returns the fingerprint as the hex of its little-endian bytes; the golden
    # test in tests/unit/test_codec.py recomputes it from the spec's algorithm.
    return bytes.fromhex(fingerprint(canonical_form, "CRC-64-AVRO"))


def load_writer_schemas(avro_dir: Path = schemas.AVRO_DIR) -> dict[str, WriterSchema]:
    """Parse every top-level schema in `avro_dir` (references resolved by fullname)."""
    loaded = {}
    for name in TOP_LEVEL:
        parsed = load_schema(str(avro_dir / f"{NAMESPACE}.{name}.avsc"))
        canonical = to_parsing_canonical_form(parsed)
        loaded[name] = WriterSchema(
            name, parsed, canonical, crc64_avro_fingerprint(canonical), _has_record_union(parsed)
        )
    return loaded


def _has_record_union(schema: Any) -> bool:
    if isinstance(schema, list):
        records = [b for b in schema if isinstance(b, dict) and b.get("type") == "record"]
        return len(records) > 1 or any(_has_record_union(b) for b in schema)
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            return any(_has_record_union(f["type"]) for f in schema["fields"])
        if kind == "array":
            return _has_record_union(schema["items"])
        if kind == "map":
            return _has_record_union(schema["values"])
        return _has_record_union(kind) if isinstance(kind, dict | list) else False
    return False


class _EndTrackingBuffer(io.BytesIO):
    """Remembers whether a read came up short (the body needed more bytes than it had)."""

    ran_past_end = False

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if size is not None and size > 0 and len(chunk) < size:
            self.ran_past_end = True
        return chunk


def _runs_past_the_end(writer: WriterSchema, data: bytes) -> bool:
    """Decode again, slowly, to tell a truncated body from a corrupt one.

    fastavro reports a short read as EOFError or IndexError (a varint read of b""[0]),
    and a union index out of range as IndexError too; only the failure path pays this.
    """
    buffer = _EndTrackingBuffer(data)
    buffer.seek(HEADER_LENGTH)
    try:
        named = writer.has_record_union
        fastavro.schemaless_reader(buffer, writer.parsed, None, named, named)
    except Exception:  # noqa: BLE001, S110 - the outcome is in ran_past_end
        pass
    return buffer.ran_past_end


class SchemaSet:
    """The known writer schemas, by short name and by fingerprint."""

    def __init__(self, writers: Mapping[str, WriterSchema]) -> None:
        self.by_name = dict(writers)
        self.by_fingerprint = {w.fingerprint: w for w in writers.values()}
        if len(self.by_fingerprint) != len(self.by_name):
            raise ValueError("two schemas share a fingerprint")

    def encode_dict(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Frame `record` (an Avro dict of schema `name`) in single-object encoding."""
        writer = self.by_name[name]
        out = io.BytesIO()
        out.write(writer.header)
        fastavro.schemaless_writer(out, writer.parsed, record)
        return out.getvalue()

    def decode_dict(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The schema name and Avro dict of a single-object encoded message.

        Unions of several records come back as `(fullname, dict)` tuples.
        """
        writer = self.writer_of(data)
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_LENGTH)
        try:
            # return_record_name(+override): a union of several records reads as
            # (fullname, dict); a ["null", record] union reads as the plain dict. Asked
            # only where needed: it costs a fifth of the decoding time.
            named = writer.has_record_union
            record = fastavro.schemaless_reader(buffer, writer.parsed, None, named, named)
        except Exception as exc:  # noqa: BLE001 - any reader failure means bad bytes
            if _runs_past_the_end(writer, data):
                raise InvalidMessage(
                    "truncated", f"{writer.name} body ends early ({len(data)} bytes)"
                ) from None
            raise InvalidMessage(
                "invalid_record", f"{writer.name} body does not decode: {type(exc).__name__}"
            ) from exc
        if buffer.tell() != len(data):
            raise InvalidMessage(
                "trailing_bytes",
                f"{writer.name} ends at byte {buffer.tell()} of {len(data)}",
            )
        if not isinstance(record, dict):  # every top-level schema is a record
            raise InvalidMessage("invalid_record", f"{writer.name} is not a record")
        return writer.name, record

    def writer_of(self, data: bytes) -> WriterSchema:
        """The writer schema named by the message's header."""
        if not MAGIC.startswith(data[:2]):
            raise InvalidMessage("bad_magic", f"does not start with C3 01: {data[:2].hex()!r}")
        if len(data) < HEADER_LENGTH:
            raise InvalidMessage(
                "truncated", f"header needs {HEADER_LENGTH} bytes, got {len(data)}"
            )
        writer = self.by_fingerprint.get(data[2:HEADER_LENGTH])
        if writer is None:
            raise InvalidMessage(
                "unknown_fingerprint", f"unknown writer schema {data[2:HEADER_LENGTH].hex()}"
            )
        return writer
