"""The wire codec: round trips, framing errors, and the fingerprint against the Avro spec."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastavro.schema import to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from automation_core.model import (
    Action,
    Company,
    Contact,
    EntityType,
    Item,
    Pipeline,
    Rule,
    StageChanged,
)
from runtime import codec
from runtime.codec import InvalidMessage
from tests.unit.strategies import (
    actions,
    executions,
    pipelines,
    records,
    rules,
    stage_changes,
    timer_commands,
)

RECORD_STRATEGIES = [
    pytest.param(stage_changes, id="StageChanged"),
    pytest.param(pipelines, id="Pipeline"),
    pytest.param(rules, id="Rule"),
    pytest.param(actions, id="Action"),
    pytest.param(timer_commands, id="TimerCommand"),
    pytest.param(executions, id="Execution"),
]

EVENT = StageChanged(
    event_id="evt-1001",
    occurred_at=datetime(2026, 11, 26, 10, tzinfo=UTC),
    entity_type=EntityType.DEAL,
    item_id="4711",
    pipeline_id="sales",
    stage_id="WON",
    previous_stage_id="NEGOTIATION",
    item=Item(
        title="Maintenance Müller GmbH",
        responsible_id="u-7",
        amount=Decimal("12000.00"),
        currency="EUR",
        company=Company("c-1", "Müller GmbH"),
        contacts=(Contact("p-1", "Anna", "Müller", "anna@example.com", "+49 30 1234"),),
        begin_date=date(2026, 11, 1),
        close_date=date(2026, 11, 30),
        fields={"UF_CONTRACT_NO": "MV-17", "UF_TAGS": ["a", "b"], "UF_EMPTY": None},
    ),
)


def _reason(data: bytes) -> str:
    with pytest.raises(InvalidMessage) as caught:
        codec.decode(data)
    return caught.value.reason


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("strategy", RECORD_STRATEGIES)
@given(data=st.data())
def test_every_record_type_decodes_to_an_equal_domain_object(
    strategy: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    record = data.draw(strategy)
    decoded = codec.decode(codec.encode(record))
    assert decoded == record
    assert type(decoded) is type(record)


@given(actions)
def test_action_payload_decodes_to_the_kind_it_was_written_as(action: Action) -> None:
    decoded = codec.decode_as(codec.encode(action), Action)
    assert decoded.kind == action.kind
    assert type(decoded.payload) is type(action.payload)


def test_decoded_timestamps_are_utc_aware() -> None:
    berlin = timezone(timedelta(hours=1))
    event = dataclasses.replace(EVENT, occurred_at=datetime(2026, 1, 1, 11, tzinfo=berlin))
    decoded = codec.decode_as(codec.encode(event), StageChanged)
    assert decoded.occurred_at.tzinfo == UTC
    assert decoded.occurred_at == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_rule_and_pipeline_share_a_topic_and_decode_to_their_own_types() -> None:
    rule = Rule("r-1", "v1", EntityType.DEAL, "sales", "WON", {"action": {"type": "copy_deal"}})
    pipeline = Pipeline("sales", EntityType.DEAL, ("NEW", "WON"))
    assert isinstance(codec.decode(codec.encode(rule)), Rule)
    assert isinstance(codec.decode(codec.encode(pipeline)), Pipeline)
    assert codec.schema_name_of(codec.encode(pipeline)) == "Pipeline"


def test_rule_spec_travels_as_canonical_json() -> None:
    rule = Rule("r-1", "v1", EntityType.DEAL, "sales", "WON", {"b": 1, "a": "Müller"})
    _, avro = codec.decode_dict(codec.encode(rule))
    assert avro["spec_json"] == '{"a":"Müller","b":1}'


def test_amount_travels_as_a_decimal_string_not_a_float() -> None:
    _, avro = codec.decode_dict(codec.encode(EVENT))
    assert avro["item"]["amount"] == "12000.00"


def test_encoding_a_naive_timestamp_is_refused() -> None:
    naive = dataclasses.replace(EVENT, occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        codec.encode(naive)


def test_encoding_something_that_is_not_a_top_level_record_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Item"):
        codec.encode(EVENT.item)  # type: ignore[arg-type]


def test_decode_as_another_record_type_is_unexpected_schema() -> None:
    with pytest.raises(InvalidMessage) as caught:
        codec.decode_as(codec.encode(EVENT), Action)
    assert caught.value.reason == "unexpected_schema"


# -- framing errors ------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_invalid_message(data: bytes) -> None:
    try:
        codec.decode(data)
    except InvalidMessage:
        pass


@given(st.sampled_from(sorted(codec.fingerprints())), st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header_raise_only_invalid_message(
    name: str, body: bytes
) -> None:
    try:
        codec.decode(codec.MAGIC + codec.fingerprints()[name] + body)
    except InvalidMessage:
        pass


@given(records, st.integers(0, 10**6), st.integers(0, 255))
def test_a_valid_message_with_one_byte_changed_decodes_or_raises_invalid_message(
    record: Any, position: int, byte: int
) -> None:
    data = bytearray(codec.encode(record))
    data[codec.HEADER_LENGTH + position % (len(data) - codec.HEADER_LENGTH)] = byte
    try:
        codec.decode(bytes(data))
    except InvalidMessage:
        pass


@settings(max_examples=30)
@given(records)
def test_a_message_cut_at_any_byte_is_truncated(record: Any) -> None:
    data = codec.encode(record)
    for cut in range(len(data)):
        assert _reason(data[:cut]) == "truncated", f"cut at {cut} of {len(data)}"


@given(records, st.binary(min_size=1, max_size=8))
def test_bytes_after_the_record_are_trailing_bytes(record: Any, extra: bytes) -> None:
    assert _reason(codec.encode(record) + extra) == "trailing_bytes"


def test_an_unknown_fingerprint_is_rejected() -> None:
    data = codec.encode(EVENT)
    assert _reason(data[:2] + b"\x00" * 8 + data[10:]) == "unknown_fingerprint"


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(b"\xc3\x02", id="wrong-second-byte"),
        pytest.param(b"{", id="json"),
    ],
)
def test_a_message_without_the_single_object_marker_is_bad_magic(prefix: bytes) -> None:
    assert _reason(prefix + codec.encode(EVENT)[2:]) == "bad_magic"


def test_a_registry_framed_message_without_a_registry_names_the_missing_setting() -> None:
    data = b"\x00\x00\x00\x00\x01" + codec.encode(EVENT)[codec.HEADER_LENGTH :]
    with pytest.raises(codec.InvalidMessage, match="CRM_AUTOMATION_SCHEMA_REGISTRY_URL") as exc:
        codec.decode(data)
    assert exc.value.reason == "no_schema_registry"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("entity_type", "CONTACT", id="unknown-entity-type"),
        pytest.param("amount", "12,000", id="malformed-amount"),
        pytest.param("amount", "NaN", id="not-a-number-amount"),
    ],
)
def test_well_formed_avro_that_is_not_a_valid_record_is_invalid_record(
    field: str, value: str
) -> None:
    _, avro = codec.decode_dict(codec.encode(EVENT))
    if field == "amount":
        avro["item"]["amount"] = value
    else:
        avro[field] = value
    with pytest.raises(InvalidMessage) as caught:
        codec.decode(codec.encode_dict("StageChanged", avro))
    assert caught.value.reason == "invalid_record"


def test_a_rule_whose_spec_is_not_a_json_object_is_invalid_record() -> None:
    rule = Rule("r-1", "v1", EntityType.DEAL, "sales", "WON", {})
    _, avro = codec.decode_dict(codec.encode(rule))
    for spec_json in ("[1, 2]", "{not json"):
        avro["spec_json"] = spec_json
        with pytest.raises(InvalidMessage) as caught:
            codec.decode(codec.encode_dict("Rule", avro))
        assert caught.value.reason == "invalid_record"


# -- the fingerprint, recomputed from the Avro specification --------------------------

CRC64_AVRO_EMPTY = 0xC15D213AA4D7A795


def _spec_fingerprint64(data: bytes) -> int:
    """The Avro specification's reference algorithm ("Schema Fingerprints")."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & -(fp & 1))
        table.append(fp)
    fp = CRC64_AVRO_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_reference_algorithm_matches_the_avro_test_vector_for_int() -> None:
    # Avro's own test suite: the CRC-64-AVRO fingerprint of "int" is 0x7275d51a3f395c8f.
    assert _spec_fingerprint64(b'"int"') == 0x7275D51A3F395C8F


def test_stage_changed_header_carries_the_little_endian_spec_fingerprint() -> None:
    canonical = to_parsing_canonical_form(codec.writer_schemas()["StageChanged"].parsed)
    expected = _spec_fingerprint64(canonical.encode()).to_bytes(8, "little")
    data = codec.encode(EVENT)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == expected


def test_every_schema_header_carries_the_spec_fingerprint_of_its_canonical_form() -> None:
    for name, writer in codec.writer_schemas().items():
        canonical = json.dumps(json.loads(writer.canonical_form), separators=(",", ":"))
        assert canonical == writer.canonical_form, name  # canonical form has no spaces
        fingerprint = _spec_fingerprint64(canonical.encode()).to_bytes(8, "little")
        assert codec.FINGERPRINTS[name] == fingerprint, name


def test_stage_changed_fingerprint_is_the_one_documented_in_wire_format() -> None:
    # A schema change changes this value: update docs/wire-format.md with it.
    assert codec.fingerprints()["StageChanged"].hex() == "b5bcc16e77875bdc"
