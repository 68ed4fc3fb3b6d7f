"""Avro single-object encoding: `C3 01`, the writer schema's fingerprint, the body; or
the schema registry wire format: `00`, the schema's 4-byte big-endian id, the body.

Messages written with an older version of a schema stay on the topics (and in the
scheduler's stored actions), so every released version is kept in `schemas/avro/history/`
(the whole schema, logical types included, named by its fingerprint) and read against
the current schema (Avro schema resolution: fields added since get their defaults).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

import schemas
from runtime.codec.avro_reader import Read, compile_reader
from runtime.codec.avro_writer import Unsupported, Writer, compile_writer

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8
REGISTRY_MAGIC = b"\x00"
REGISTRY_HEADER_LENGTH = len(REGISTRY_MAGIC) + 4
NAMESPACE = "crm.automation"
# The records that travel on a topic as a message value; the others (Item, Contact,
# Company) only ever appear inside them.
TOP_LEVEL = ("StageChanged", "Rule", "Pipeline", "TimerCommand", "Action", "Execution")


class InvalidMessage(Exception):
    """Bytes that can never be decoded; `reason` is a short fixed code (metric label, DLQ header).

    Codes: `bad_magic`, `unknown_fingerprint`, `unknown_schema_id`, `no_schema_registry`,
    `truncated`, `trailing_bytes`, `invalid_record`.
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
    reader: Any = None
    """The current schema of this name when this writer is an older version, else None."""

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


def history_path(avro_dir: Path, name: str, fingerprint: bytes) -> Path:
    """Where one released version of schema `name` is kept (every named type inline)."""
    return avro_dir / "history" / f"{NAMESPACE}.{name}.{fingerprint.hex()}.json"


def history_text(writer: WriterSchema) -> str:
    """What the history keeps of `writer`: its schema with every named type inline."""
    return json.dumps(_without_fastavro_keys(writer.parsed), indent=1, ensure_ascii=False) + "\n"


def _without_fastavro_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_fastavro_keys(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_without_fastavro_keys(v) for v in value]
    return value


def load_older_writers(
    current: Mapping[str, WriterSchema], avro_dir: Path = schemas.AVRO_DIR
) -> list[WriterSchema]:
    """Every released version in `avro_dir/history` other than the current ones, each
    to be read against the current schema of its name."""
    older = []
    for path in sorted((avro_dir / "history").glob(f"{NAMESPACE}.*.json")):
        name, fingerprint_hex = path.stem.removeprefix(f"{NAMESPACE}.").rsplit(".", 1)
        if name not in current or current[name].fingerprint.hex() == fingerprint_hex:
            continue
        parsed = fastavro.parse_schema(json.loads(path.read_text()))
        canonical = to_parsing_canonical_form(parsed)
        found = crc64_avro_fingerprint(canonical)
        if found.hex() != fingerprint_hex:
            raise ValueError(f"{path.name}: the schema in it has fingerprint {found.hex()}")
        older.append(
            WriterSchema(
                name, parsed, canonical, found, _has_record_union(parsed), current[name].parsed
            )
        )
    return older


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


def _runs_past_the_end(writer: WriterSchema, data: bytes, start: int) -> bool:
    """Decode again, slowly, to tell a truncated body from a corrupt one.

    fastavro reports a short read as EOFError or IndexError (a varint read of b""[0]),
    and a union index out of range as IndexError too; only the failure path pays this.
    """
    buffer = _EndTrackingBuffer(data)
    buffer.seek(start)
    try:
        named = writer.has_record_union
        fastavro.schemaless_reader(buffer, writer.parsed, None, named, named)
    except Exception:  # noqa: BLE001, S110 - the outcome is in ran_past_end
        pass
    return buffer.ran_past_end


class SchemaSet:
    """The known writer schemas, by short name and by fingerprint."""

    def __init__(
        self,
        writers: Mapping[str, WriterSchema],
        older: Iterable[WriterSchema] = (),
        compiled: bool = True,
    ) -> None:
        self.by_name = dict(writers)
        """The current writer of each schema: what `encode_dict` writes."""
        older = list(older)
        self.by_fingerprint = {w.fingerprint: w for w in (*writers.values(), *older)}
        """Every writer a message may name, current and older versions."""
        if len(self.by_fingerprint) != len(self.by_name) + len(older):
            raise ValueError("two schemas share a fingerprint")
        self.headers = {name: w.header for name, w in writers.items()}
        """What `encode_dict` writes before each schema's body."""
        self.registry_lookup: Callable[[int], str | None] | None = None
        """A registry schema id -> that schema's text (None: the registry does not know
        it); without one, registry-framed messages cannot be read."""
        self._by_id: dict[int, WriterSchema] = {}
        self._compiled = compiled
        """Write and read with the compiled writers and readers (avro_writer, avro_reader)
        where they apply; False: with fastavro alone (the tests' reference)."""
        self._writers: dict[str, Writer] = {}
        self._readers: dict[bytes, Read | None] = {}

    def write_registry_ids(self, ids: Mapping[str, int]) -> None:
        """Write the registry wire format from now on: `00` + each schema's id."""
        for name, schema_id in ids.items():
            self.headers[name] = REGISTRY_MAGIC + schema_id.to_bytes(4, "big")
            self._by_id[schema_id] = self.by_name[name]  # our own: read without a lookup

    def encode_dict(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Frame `record` (an Avro dict of schema `name`) in the configured wire format."""
        if self._compiled:
            write = self._writers.get(name)
            if write is None:
                write = self._writers[name] = compile_writer(self.by_name[name].parsed)
            try:
                return self.headers[name] + write(record)
            except Unsupported:
                pass  # a value fastavro takes its own way (avro_writer): fastavro writes it
        out = io.BytesIO()
        out.write(self.headers[name])
        fastavro.schemaless_writer(out, self.by_name[name].parsed, record)
        return out.getvalue()

    def decode_dict(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The schema name and Avro dict of a message in either wire format.

        Unions of several records come back as `(fullname, dict)` tuples.
        """
        writer, start = self.frame_of(data)
        read = self._reader_of(writer)
        if read is not None:
            try:
                record, end = read(data, start)
            except Exception:  # noqa: BLE001, S110 - fastavro below reads it or says why not
                pass
            else:
                if end == len(data):
                    return writer.name, record
        buffer = io.BytesIO(data)
        buffer.seek(start)
        try:
            # return_record_name(+override): a union of several records reads as
            # (fullname, dict); a ["null", record] union reads as the plain dict. Asked
            # only where needed: it costs a fifth of the decoding time.
            named = writer.has_record_union
            record = fastavro.schemaless_reader(buffer, writer.parsed, writer.reader, named, named)
        except Exception as exc:  # noqa: BLE001 - any reader failure means bad bytes
            if _runs_past_the_end(writer, data, start):
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

    def _reader_of(self, writer: WriterSchema) -> Read | None:
        """The compiled reader of messages `writer` wrote, None where fastavro reads them:
        an older version, read against the current one (schema resolution)."""
        if not self._compiled or writer.reader is not None:
            return None
        try:
            return self._readers[writer.fingerprint]
        except KeyError:
            pass
        try:
            read: Read | None = compile_reader(writer.parsed, writer.has_record_union)
        except ValueError:  # a registry schema with a type the compiled readers lack
            read = None
        self._readers[writer.fingerprint] = read
        return read

    def writer_of(self, data: bytes) -> WriterSchema:
        """The writer schema named by the message's header."""
        return self.frame_of(data)[0]

    def frame_of(self, data: bytes) -> tuple[WriterSchema, int]:
        """The writer schema named by the message's header, and where its body starts."""
        if data[:1] == REGISTRY_MAGIC:
            if len(data) < REGISTRY_HEADER_LENGTH:
                raise InvalidMessage(
                    "truncated", f"header needs {REGISTRY_HEADER_LENGTH} bytes, got {len(data)}"
                )
            return self._writer_by_id(int.from_bytes(data[1:REGISTRY_HEADER_LENGTH], "big")), (
                REGISTRY_HEADER_LENGTH
            )
        if not MAGIC.startswith(data[:2]):
            raise InvalidMessage(
                "bad_magic", f"does not start with C3 01 or 00: {data[:2].hex()!r}"
            )
        if len(data) < HEADER_LENGTH:
            raise InvalidMessage(
                "truncated", f"header needs {HEADER_LENGTH} bytes, got {len(data)}"
            )
        writer = self.by_fingerprint.get(data[2:HEADER_LENGTH])
        if writer is None:
            raise InvalidMessage(
                "unknown_fingerprint", f"unknown writer schema {data[2:HEADER_LENGTH].hex()}"
            )
        return writer, HEADER_LENGTH

    def _writer_by_id(self, schema_id: int) -> WriterSchema:
        """The writer schema of a registry id: one of ours when its fingerprint is known,
        else read against our current schema of its name (looked up once, then kept)."""
        known = self._by_id.get(schema_id)
        if known is not None:
            return known
        if self.registry_lookup is None:
            raise InvalidMessage(
                "no_schema_registry",
                f"registry schema id {schema_id}, and no CRM_AUTOMATION_SCHEMA_REGISTRY_URL",
            )
        text = self.registry_lookup(schema_id)
        if text is None:
            raise InvalidMessage("unknown_schema_id", f"the registry has no schema {schema_id}")
        try:
            parsed = fastavro.parse_schema(json.loads(text))
        except (ValueError, fastavro.schema.SchemaParseException) as exc:
            raise InvalidMessage(
                "unknown_schema_id", f"schema {schema_id} is not Avro: {exc}"
            ) from exc
        canonical = to_parsing_canonical_form(parsed)
        writer = self.by_fingerprint.get(crc64_avro_fingerprint(canonical))
        if writer is None:
            name = (
                str(parsed.get("name", "")).rpartition(".")[2] if isinstance(parsed, dict) else ""
            )
            current = self.by_name.get(name)
            if current is None:
                raise InvalidMessage(
                    "unknown_schema_id", f"schema {schema_id} is not one of ours ({name!r})"
                )
            writer = WriterSchema(
                name,
                parsed,
                canonical,
                crc64_avro_fingerprint(canonical),
                _has_record_union(parsed),
                current.parsed,
            )
        self._by_id[schema_id] = writer
        return writer
