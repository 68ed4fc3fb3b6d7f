"""The compiled Avro writers (runtime.codec.avro_writer) write fastavro's bytes, and hand
every value they do not take in fastavro's way back to fastavro."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import codec
from runtime.codec import records
from runtime.codec.avro_writer import Unsupported, compile_writer
from runtime.codec.framing import TOP_LEVEL
from tests.unit.strategies import records as domain_records
from tests.unit.strategies import timestamps


def fastavro_body(name: str, avro: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, codec.writer_schemas()[name].parsed, avro)
    return out.getvalue()


WRITERS = {name: compile_writer(codec.writer_schemas()[name].parsed) for name in TOP_LEVEL}


@given(domain_records)
def test_every_record_is_written_byte_for_byte_as_fastavro_writes_it(
    record: codec.TopLevel,
) -> None:
    name, to_avro = records.TO_AVRO[type(record)]
    avro = to_avro(record)
    assert WRITERS[name](avro) == fastavro_body(name, avro)
    assert codec.encode(record) == codec.header(name) + fastavro_body(name, avro)


@given(domain_records)
def test_unions_without_branch_names_are_written_as_fastavro_writes_them(
    record: codec.TopLevel,
) -> None:
    # fastavro picks the branch by the value: the compiled writer where its Python type
    # says it (None, str, list, the one record of ["null", record]), fastavro elsewhere.
    name, to_avro = records.TO_AVRO[type(record)]
    plain = _without_branch_names(to_avro(record))
    assert codec.encode_dict(name, plain) == codec.header(name) + fastavro_body(name, plain)


def _without_branch_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_branch_names(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return _without_branch_names(value[1])
    if isinstance(value, list):
        return [_without_branch_names(v) for v in value]
    return value


def a_stage_change() -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "occurred_at": datetime(2026, 12, 3, 9, 30, 0, 123456, tzinfo=UTC),
        "entity_type": "DEAL",
        "item_id": "d-1",
        "pipeline_id": "deals",
        "stage_id": "WON",
        "item": {
            "title": "Lift maintenance",
            "responsible_id": "u-1",
            "amount": "1200.50",
            "currency": "EUR",
            "company": None,
            "contacts": [],
            "begin_date": date(2026, 12, 1),
            "close_date": None,
            "fields": {"UF_REGION": "west", "UF_TAGS": ["a", "b"], "UF_NONE": None},
        },
        "previous_stage_id": None,
        "created_by_automation": False,
        "copy_depth": 0,
        "source_item_key": None,
    }


def with_item(**changes: Any) -> dict[str, Any]:
    event = a_stage_change()
    event["item"] = {**event["item"], **changes}
    return event


@pytest.mark.parametrize(
    "avro",
    [
        pytest.param({**a_stage_change(), "created_by_automation": 1}, id="boolean-as-int"),
        pytest.param(with_item(begin_date="2026-12-01"), id="iso-date-string"),
        pytest.param(with_item(begin_date=datetime(2026, 12, 1, 23, tzinfo=UTC)), id="date-time"),
        pytest.param(with_item(begin_date=20_000), id="date-as-days"),
        pytest.param({**a_stage_change(), "occurred_at": 1_780_000_000_000}, id="millis-as-int"),
        pytest.param({**a_stage_change(), "copy_depth": True}, id="int-as-bool"),
        pytest.param(
            {k: v for k, v in a_stage_change().items() if k != "source_item_key"},
            id="a-field-left-to-its-default",
        ),
        pytest.param(with_item(contacts=()), id="array-as-tuple"),
        pytest.param(with_item(company={"id": "co-1", "title": "Becker"}), id="unnamed-record"),
    ],
)
def test_values_fastavro_takes_its_own_way_get_fastavros_bytes(avro: dict[str, Any]) -> None:
    try:
        WRITERS["StageChanged"](avro)
    except Unsupported:
        pass  # handed to fastavro, as it should be: the bytes below are what counts
    assert codec.encode_dict("StageChanged", avro) == codec.header("StageChanged") + fastavro_body(
        "StageChanged", avro
    )


@pytest.mark.parametrize(
    "avro",
    [
        pytest.param({**a_stage_change(), "event_id": 7}, id="int-for-string"),
        pytest.param({**a_stage_change(), "event_id": "e-\ud800"}, id="lone-surrogate"),
        pytest.param({**a_stage_change(), "copy_depth": "0"}, id="string-for-int"),
        pytest.param({**a_stage_change(), "copy_depth": 2**63}, id="past-a-long"),
        pytest.param(with_item(fields={"UF_X": 3}), id="no-union-branch"),
        pytest.param(with_item(contacts=[{"id": "c"}]), id="missing-field"),
        pytest.param(with_item(company=("crm.automation.Nope", {})), id="unknown-branch-name"),
    ],
)
def test_values_fastavro_refuses_are_refused_with_its_error(avro: dict[str, Any]) -> None:
    with pytest.raises(Exception) as by_fastavro:
        fastavro_body("StageChanged", avro)
    with pytest.raises(type(by_fastavro.value)):
        codec.encode_dict("StageChanged", avro)


@given(timestamps | st.datetimes(timezones=st.just(UTC)))
def test_timestamps_round_sub_milliseconds_as_fastavro(at: datetime) -> None:
    avro = {**a_stage_change(), "occurred_at": at}
    assert WRITERS["StageChanged"](avro) == fastavro_body("StageChanged", avro)


_encodable = st.characters(blacklist_categories=("Cs",))  # UTF-8 has no lone surrogates


@given(st.integers(-(2**63), 2**63 - 1), st.text(_encodable, max_size=200))
def test_longs_and_long_strings_are_written_as_fastavro(number: int, text: str) -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "T",
            "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}],
        }
    )
    value = {"n": number, "s": text}
    written = compile_writer(schema)(value)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, value)
    assert written == out.getvalue()


UNSUPPORTED_KINDS = pytest.mark.parametrize(
    "kind",
    [
        "double",
        "bytes",
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "fixed", "name": "F", "size": 2},
        {"type": "bytes", "logicalType": "decimal", "precision": 4},
    ],
    ids=["double", "bytes", "enum", "fixed", "decimal"],
)
"""Types the project's schemas do not use: the compiled writers and readers have none."""


@UNSUPPORTED_KINDS
def test_a_schema_with_a_type_it_has_no_writer_for_is_refused_when_compiled(kind: Any) -> None:
    schema = fastavro.parse_schema(
        {"type": "record", "name": "T", "fields": [{"name": "x", "type": kind}]}
    )
    with pytest.raises(ValueError, match="no fast writer"):
        compile_writer(schema)
