"""The Postgres sink's rows read straight from a message equal the rows of the decoded record.

`sinks.postgres.row_reader` reads current Action and Execution messages without the
codec; whatever it reads must give the rows and announcement bytes the codec's path
gives, and whatever it leaves (older writers, the registry wire format, bodies that are
not plain) must still reach the codec's path, with the same dead-letter reason.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import fastavro
import fastavro.schema
import pytest
from hypothesis import given
from prometheus_client import CollectorRegistry
from psycopg.types.json import Jsonb

from automation_core.model import (
    Action,
    ActionMode,
    CallWebhook,
    Client,
    Company,
    CompleteActivities,
    Contact,
    CopyDeal,
    CreateLead,
    Execution,
    ExecutionStatus,
    Item,
    PlanActivity,
)
from runtime import codec
from runtime.codec import records
from schemas import AVRO_DIR
from sinks.metrics import SinkMetrics
from sinks.postgres.process import PostgresStep
from sinks.postgres.row_reader import RowReader
from sinks.postgres.rows import ReadRows, Rows
from tests.unit.strategies import actions, executions
from tests.unit.test_codec_history import OLDER_ACTIONS, older, written_with

TOPIC = "crm.stage-changes"
T0 = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
TABLES = ("leads", "deals", "activities", "completions", "executions", "outbox")


def comparable(rows: Rows) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows with every value's type (and a time's zone) beside it."""

    def value(v: Any) -> Any:
        if isinstance(v, Jsonb):
            return ("Jsonb", v.obj)
        if isinstance(v, datetime):
            return ("datetime", v, v.tzinfo)
        return (type(v).__name__, v)

    return {t: [tuple(value(v) for v in row) for row in getattr(rows, t)] for t in TABLES}


def rows_of_the_decoded_record(data: bytes) -> Rows:
    rows = Rows(announce_topic=TOPIC)
    record = codec.decode(data)
    if isinstance(record, Action):
        rows.add_action(record)
    else:
        assert isinstance(record, Execution)
        rows.add_execution(record)
    return rows


def rows_read(data: bytes) -> Rows | None:
    read = RowReader().read(data)
    if read is None:
        return None
    rows = Rows(announce_topic=TOPIC)
    rows.add_read(read)
    return rows


def a_step() -> PostgresStep:
    return PostgresStep("postgresql://unused", SinkMetrics.create(CollectorRegistry()))


@given(actions)
def test_a_current_action_reads_into_the_rows_and_announcement_of_the_decoded_action(
    action: Action,
) -> None:
    data = codec.encode(action)
    read = rows_read(data)
    if isinstance(action.payload, CallWebhook):
        assert read is None  # no row: left to the codec's path
        return
    assert read is not None
    assert comparable(read) == comparable(rows_of_the_decoded_record(data))


@given(executions)
def test_a_current_execution_reads_into_the_row_of_the_decoded_execution(
    execution: Execution,
) -> None:
    data = codec.encode(execution)
    read = rows_read(data)
    assert read is not None
    assert comparable(read) == comparable(rows_of_the_decoded_record(data))


COMPANY = Company("c-1", "Müller GmbH")
CONTACTS = (Contact("p-1", "Anna", email="anna@example.com"), Contact("p-2", "Ben", "Ot"))
ITEM = Item(
    title="Maintenance",
    responsible_id="u-7",
    amount=Decimal("12000.00"),
    currency="EUR",
    company=COMPANY,
    contacts=CONTACTS,
    begin_date=date(2026, 12, 1),
    fields={"UF_CONTRACT_NO": "MV-1", "UF_TAGS": ["a", "b"], "UF_EMPTY": None},
)


def an_action(payload: Any, **changes: Any) -> Action:
    action = Action(
        action_id="a-1",
        rule_id="rule-1",
        rule_version="v1",
        item_key="DEAL:42",
        event_id="evt-1",
        stage_entry_id="evt-1",
        occurred_at=T0,
        mode=ActionMode.IMMEDIATE,
        payload=payload,
    )
    return dataclasses.replace(action, **changes)


EVERY_KIND = [
    pytest.param(an_action(CopyDeal("deal-1", "p", "NEW", ITEM, "DEAL:42", 2)), id="deal"),
    pytest.param(
        an_action(
            CopyDeal("deal-1", "p", "NEW", Item("x", "u-1"), "DEAL:42", 1),
            mode=ActionMode.DELAYED,
            due_at=datetime(2027, 6, 1, tzinfo=UTC),
        ),
        id="delayed-deal-announced-at-its-due-time",
    ),
    pytest.param(an_action(CreateLead("lead-1", "Renewal", "u-7", COMPANY, CONTACTS)), id="lead"),
    pytest.param(
        an_action(CreateLead("lead-1", "Renewal", "u-7", None, (), False, "L", "NEW", 3)),
        id="lead-announced",
    ),
    pytest.param(
        an_action(CreateLead("lead-1", "Renewal", "u-7", COMPANY, CONTACTS, True, "L", "", 1)),
        id="lead-with-an-empty-stage-not-announced",
    ),
    pytest.param(
        an_action(
            PlanActivity(
                activity_id="act-1",
                subject="Call",
                description="About the contract",
                deadline=T0,
                duration_minutes=30,
                responsible_id="u-7",
                stage_id="APPROVAL",
                color="yellow",
                add_to_calendar=True,
                clients=(Client("p-1", "contact", "Anna", "anna@example.com"),),
                invitee_ids=("u-12", "u-13"),
                address="Hauptstr. 1",
                link="https://meet.example.com/x",
                files=("f-1",),
                complete_on_stage_exit=True,
                activity_type="call",
            )
        ),
        id="activity",
    ),
    pytest.param(an_action(CompleteActivities("APPROVAL", T0)), id="completion"),
]


@pytest.mark.parametrize("action", EVERY_KIND)
def test_every_action_kind_reads_into_the_rows_of_the_decoded_action(action: Action) -> None:
    data = codec.encode(action)
    read = rows_read(data)
    assert read is not None
    assert comparable(read) == comparable(rows_of_the_decoded_record(data))
    assert len(read) == len(rows_of_the_decoded_record(data)) > 0


def test_a_batch_through_the_step_is_the_batch_of_decoded_records() -> None:
    step = a_step()
    messages = [codec.encode(p.values[0]) for p in EVERY_KIND]
    messages.append(codec.encode(an_action(CallWebhook("https://x", "p", "s", ITEM, ()))))
    messages.append(
        codec.encode(Execution("rule-1", "DEAL:42", "evt-1", ExecutionStatus.FIRED, T0, "a-1"))
    )
    decoded = [step.decode(m) for m in messages]
    assert sum(isinstance(r, ReadRows) for r in decoded) == len(messages) - 1  # not the webhook
    expected = Rows()
    for m in messages:
        expected.extend_rows(rows_of_the_decoded_record(m))
    step_rows = step.rows(decoded)
    expected.outbox = []  # this step announces nothing (no topic), as before
    assert comparable(step_rows) == comparable(expected)


@pytest.mark.parametrize("fingerprint", sorted(OLDER_ACTIONS))
@given(action=actions.filter(lambda a: not isinstance(a.payload, CallWebhook)))
def test_an_action_of_an_older_version_takes_the_codecs_path_to_its_rows(
    fingerprint: str, action: Action
) -> None:
    data = written_with(older("Action", fingerprint), records.action_to_avro(action))
    assert RowReader().read(data) is None
    decoded = a_step().decode(data)
    assert decoded == codec.decode(data)


def test_a_registry_framed_message_takes_the_codecs_path() -> None:
    data = codec.encode(an_action(CompleteActivities("APPROVAL", T0)))
    registry_framed = codec.REGISTRY_MAGIC + (7).to_bytes(4, "big") + data[codec.HEADER_LENGTH :]
    assert RowReader().read(registry_framed) is None


def action_avro(**payload_changes: Any) -> dict[str, Any]:
    avro = records.action_to_avro(an_action(CopyDeal("deal-1", "p", "NEW", ITEM, "DEAL:42", 2)))
    branch, payload = avro["payload"]
    item = {**payload["item"], **payload_changes}
    avro["payload"] = (branch, {**payload, "item": item})
    return avro


DEAL = codec.encode(an_action(CopyDeal("deal-1", "p", "NEW", ITEM, "DEAL:42", 2)))
EXECUTION = codec.encode(
    Execution("rule-1", "DEAL:42", "evt-1", ExecutionStatus.FIRED, T0, "a-1", "v1", T0)
)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(DEAL[:-1], "truncated", id="truncated-action"),
        pytest.param(EXECUTION[:-3], "truncated", id="truncated-execution"),
        pytest.param(DEAL + b"\x00", "trailing_bytes", id="trailing-bytes"),
        pytest.param(
            codec.encode_dict("Action", {**action_avro(), "mode": "sometimes"}),
            "invalid_record",
            id="unknown-mode",
        ),
        pytest.param(
            codec.encode_dict(
                "Execution",
                {**records.execution_to_avro(codec.decode_as(EXECUTION, Execution)), "status": "x"},
            ),
            "invalid_record",
            id="unknown-status",
        ),
        pytest.param(
            codec.encode_dict("Action", action_avro(amount="NaN")), "invalid_record", id="nan"
        ),
        pytest.param(
            codec.encode_dict("Action", action_avro(amount="12,5")), "invalid_record", id="amount"
        ),
        pytest.param(
            DEAL[: codec.HEADER_LENGTH] + b"\xff\xff" + DEAL[codec.HEADER_LENGTH + 2 :],
            None,
            id="garbage",
        ),
    ],
)
def test_a_message_that_never_decodes_is_refused_with_the_codecs_reason(
    data: bytes, reason: str | None
) -> None:
    """`reason`: the codec's reason (None: whichever the codec gives)."""
    assert RowReader().read(data) is None
    with pytest.raises(codec.InvalidMessage) as caught:
        a_step().decode(data)
    with pytest.raises(codec.InvalidMessage) as by_codec:
        codec.decode(data)
    assert caught.value.reason == by_codec.value.reason == (reason or by_codec.value.reason)


def overlong_copy_depth(data: bytes) -> bytes:
    """The deal's copy_depth (2, the body's last field: varint 04) written in two bytes."""
    assert data[-1:] == b"\x04"
    return data[:-1] + b"\x84\x00"


def duplicate_field(data: bytes) -> bytes:
    """The deal's custom fields UF_A and UF_B as UF_A twice (the codec keeps the last)."""
    assert data.count(b"UF_B") == 1
    return data.replace(b"UF_B", b"UF_A")


TWO_FIELDS = dataclasses.replace(ITEM, fields={"UF_A": "x", "UF_B": "y"})


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            codec.encode_dict("Action", action_avro(amount="1.2E+3")), id="canonical-exponent"
        ),
        pytest.param(
            codec.encode_dict("Action", action_avro(amount="1e3")), id="amount-not-canonical"
        ),
        pytest.param(overlong_copy_depth(DEAL), id="overlong-varint"),
        pytest.param(
            duplicate_field(
                codec.encode(an_action(CopyDeal("deal-1", "p", "NEW", TWO_FIELDS, "DEAL:42", 2)))
            ),
            id="duplicate-map-key",
        ),
    ],
)
def test_a_body_the_codec_would_re_encode_differently_is_read_by_the_codec(data: bytes) -> None:
    step = a_step()
    step_rows = Rows(announce_topic=TOPIC)
    decoded = step.decode(data)
    if isinstance(decoded, ReadRows):
        step_rows.add_read(decoded)
    else:
        assert isinstance(decoded, Action)
        step_rows.add_action(decoded)
    assert comparable(step_rows) == comparable(rows_of_the_decoded_record(data))


def test_a_string_of_64_bytes_and_more_reads_into_the_rows_of_the_decoded_action() -> None:
    # Its length takes two varint bytes: the reader's general path, not its one-byte one.
    title = "Wartungsvertrag für die Müller GmbH, " * 4
    assert len(title.encode()) >= 64
    data = codec.encode(an_action(CreateLead("lead-1", title, "u-7", COMPANY, CONTACTS, True)))
    read = rows_read(data)
    assert read is not None
    assert comparable(read) == comparable(rows_of_the_decoded_record(data))


def test_a_string_length_written_in_more_bytes_than_needed_is_left_to_the_codec() -> None:
    data = codec.encode(an_action(CompleteActivities("APPROVAL", T0)))
    assert data.count(b"\x10APPROVAL") == 1  # length 8, zig-zag 16: one byte
    overlong = data.replace(b"\x10APPROVAL", b"\x90\x00APPROVAL")
    assert RowReader().read(overlong) is None
    assert a_step().decode(overlong) == codec.decode(overlong)


def encoded_contact(contact: Contact) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CONTACT_SCHEMA, records.contact_to_avro(contact))
    return out.getvalue()


CONTACT_SCHEMA = fastavro.schema.load_schema(str(AVRO_DIR / "crm.automation.Contact.avsc"))


def test_a_contact_list_in_two_blocks_is_read_by_the_codec_to_the_same_rows() -> None:
    action = an_action(CreateLead("lead-1", "Renewal", "u-7", None, CONTACTS, True, "L", "N"))
    first, second = map(encoded_contact, CONTACTS)
    one_block = b"\x04" + first + second + b"\x00"
    data = codec.encode(action)
    assert data.count(one_block) == 1
    two_blocks = data.replace(one_block, b"\x02" + first + b"\x02" + second + b"\x00")
    assert RowReader().read(two_blocks) is None
    assert a_step().decode(two_blocks) == action
