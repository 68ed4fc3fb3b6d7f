"""The schema registry wire format: `00` + a 4-byte schema id + the same Avro body.

The codec under test is a fresh one per test (its registry ids and lookup are process
state); the registry itself is a dict here, and Apicurio in tests/integration.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from hypothesis import given

from automation_core.model import Action, StageChanged, TimerCommand
from runtime import codec
from runtime.codec import records
from runtime.codec.framing import SchemaSet, history_text, load_older_writers, load_writer_schemas
from tests.unit.strategies import records as any_record
from tests.unit.strategies import timer_commands
from tests.unit.test_codec import EVENT

IDS = {
    "StageChanged": 11,
    "Rule": 12,
    "Pipeline": 13,
    "TimerCommand": 14,
    "Action": 15,
    "Execution": 16,
}


class Registry:
    """Schema texts by id, counting lookups."""

    def __init__(self) -> None:
        writers = load_writer_schemas()
        self.texts = {IDS[name]: history_text(w) for name, w in writers.items()}
        self.lookups: list[int] = []

    def lookup(self, schema_id: int) -> str | None:
        self.lookups.append(schema_id)
        return self.texts.get(schema_id)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    current = load_writer_schemas()
    fresh = SchemaSet(current, load_older_writers(current))
    monkeypatch.setattr(codec, "_schema_set", lambda: fresh)
    found = Registry()
    codec.read_registry_schemas_with(found.lookup)
    yield found


@given(any_record)
def test_the_registry_format_is_the_same_body_behind_the_schemas_id(record: Any) -> None:
    single_object = codec.encode(record)
    current = load_writer_schemas()
    schemas = SchemaSet(current)
    schemas.write_registry_ids(IDS)
    name = type(record).__name__
    framed = schemas.encode_dict(name, records.TO_AVRO[type(record)][1](record))
    assert framed == b"\x00" + IDS[name].to_bytes(4, "big") + single_object[codec.HEADER_LENGTH :]
    # Our own ids are read without asking the registry.
    assert schemas.decode_dict(framed) == codec.decode_dict(single_object)


def test_a_producer_s_registry_message_is_read_through_the_registry_once(
    registry: Registry,
) -> None:
    body = codec.encode(EVENT)[codec.HEADER_LENGTH :]
    framed = b"\x00" + (11).to_bytes(4, "big") + body
    assert codec.decode_as(framed, StageChanged) == EVENT
    assert codec.decode_as(framed, StageChanged) == EVENT
    assert registry.lookups == [11]
    # The single-object format is still read beside it.
    assert codec.decode(codec.encode(EVENT)) == EVENT


def test_a_newer_producer_schema_is_resolved_against_ours(registry: Registry) -> None:
    # A producer on a later schema version with a field we do not know yet.
    newer = json.loads(registry.texts[11])
    newer["fields"].append({"name": "region", "type": "string", "default": ""})
    registry.texts[99] = json.dumps(newer)
    avro = records.TO_AVRO[StageChanged][1](EVENT)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(newer), {**avro, "region": "EU"})
    assert codec.decode(b"\x00" + (99).to_bytes(4, "big") + out.getvalue()) == EVENT


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(None, "unknown_schema_id", id="id-the-registry-does-not-know"),
        pytest.param(
            '{"type": "record", "name": "Other", "fields": []}',
            "unknown_schema_id",
            id="a-record-that-is-not-ours",
        ),
        pytest.param('{"type": "nonsense"}', "unknown_schema_id", id="not-avro"),
    ],
)
def test_an_id_that_names_no_schema_of_ours_is_invalid(
    registry: Registry, text: str | None, reason: str
) -> None:
    if text is not None:
        registry.texts[42] = text
    data = b"\x00" + (42).to_bytes(4, "big") + codec.encode(EVENT)[codec.HEADER_LENGTH :]
    with pytest.raises(codec.InvalidMessage) as caught:
        codec.decode(data)
    assert caught.value.reason == reason


def test_a_registry_header_cut_short_is_truncated(registry: Registry) -> None:
    with pytest.raises(codec.InvalidMessage) as caught:
        codec.decode(b"\x00\x00\x00")
    assert caught.value.reason == "truncated"


@given(timer_commands)
def test_the_stored_action_of_a_registry_timer_command_is_in_the_registry_format(
    command: TimerCommand,
) -> None:
    current = load_writer_schemas()
    fresh = SchemaSet(current, load_older_writers(current))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "_schema_set", lambda: fresh)
        codec.write_registry_ids(IDS)
        encoded = codec.encode(command)
        assert encoded[:5] == b"\x00" + IDS["TimerCommand"].to_bytes(4, "big")
        sliced = codec.embedded_action(encoded)
        if command.action is None:
            assert sliced is None
        else:
            assert sliced == codec.encode(command.action)
            assert sliced[:5] == b"\x00" + IDS["Action"].to_bytes(4, "big")
            assert codec.decode_as(sliced, Action) == command.action
