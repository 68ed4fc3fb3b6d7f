"""An action's field in every shape it takes: spec, payload, Avro record, sink row.

The spec's fields are declared once (`automation_core/rule_spec.py`); the payload an action
builds, its Avro record and the Postgres sink's columns are written by hand, each with
its own names. These tests fail when a field has no counterpart in the next shape, so a
field cannot be added to one and forgotten in another.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from psycopg.types.json import Jsonb

from automation_core.model import (
    Action,
    ActionMode,
    Client,
    Company,
    Contact,
    CopyDeal,
    CreateLead,
    Item,
    Payload,
    PlanActivity,
)
from automation_core.rule_spec import (
    ACTION_SPECS,
    ActionSpec,
    CopyDealSpec,
    CreateLeadSpec,
    PlanActivitySpec,
    WebhookSpec,
)
from runtime.codec import records
from schemas import AVRO_DIR
from sinks.postgres.rows import ACTIVITY_COLUMNS, DEAL_COLUMNS, LEAD_COLUMNS, Rows
from tests.unit.strategies import payloads


def _names(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _payload_of(spec: type[ActionSpec]) -> type[Any]:
    (payload,) = [p for p in typing.get_args(Payload) if p.kind.value == spec.kind]
    return payload


# -- spec → payload -----------------------------------------------------------------------

PAYLOAD_FIELD_OF_SPEC_FIELD: dict[type[Any], dict[str, str]] = {
    CreateLeadSpec: {
        "title": "title",
        "responsible": "responsible_id",
        "pipeline_id": "pipeline_id",
        "stage_id": "stage_id",
    },
    CopyDealSpec: {
        "target_pipeline": "pipeline_id",
        "target_stage": "stage_id",
        # The copied item's title (the rule's, or the item's with the suffix) and owner.
        "title": "item",
        "suffix": "item",
        "responsible": "item",
    },
    PlanActivitySpec: {
        **{name: name for name in _names(PlanActivitySpec)},
        "responsible": "responsible_id",
        "invite": "invitee_ids",
        "location": "location_id",
    },
    WebhookSpec: {"url": "url", "fields": "fields"},
}
"""Where each field of a rule's action goes in the payload the action builds."""


def test_the_action_specs_are_the_action_spec_union() -> None:
    assert set(ACTION_SPECS) == set(typing.get_args(ActionSpec))


@pytest.mark.parametrize("spec", ACTION_SPECS, ids=lambda spec: spec.kind)
def test_every_spec_field_goes_to_a_field_of_its_actions_payload(spec: type[Any]) -> None:
    mapping = PAYLOAD_FIELD_OF_SPEC_FIELD[spec]
    assert sorted(mapping) == sorted(_names(spec))
    assert set(mapping.values()) <= set(_names(_payload_of(spec)))


# -- payload → Avro record ----------------------------------------------------------------


def _avro_records() -> dict[str, list[str]]:
    schema = json.loads((AVRO_DIR / "crm.automation.Action.avsc").read_text())
    (payload,) = [f for f in schema["fields"] if f["name"] == "payload"]
    return {
        f"crm.automation.{record['name']}": [f["name"] for f in record["fields"]]
        for record in payload["type"]
    }


@pytest.mark.parametrize("payload", typing.get_args(Payload), ids=lambda p: p.__name__)
def test_every_payload_field_is_a_field_of_its_avro_record(payload: type[Any]) -> None:
    record_name, _ = records.PAYLOAD_TO_AVRO[payload]
    assert _names(payload) == _avro_records()[record_name]


@given(payloads)
def test_the_codec_writes_every_field_of_the_payloads_avro_record(payload: Payload) -> None:
    record_name, to_avro = records.PAYLOAD_TO_AVRO[type(payload)]
    assert list(to_avro(payload)) == _avro_records()[record_name]


# -- payload → Postgres row ---------------------------------------------------------------

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)
ITEM = Item(
    title="Maintenance 2027",
    responsible_id="u-7",
    amount=Decimal("12000.00"),
    currency="EUR",
    company=Company("c-1", "Müller GmbH"),
    contacts=(Contact("p-1", "Anna"),),
    begin_date=date(2027, 1, 1),
    close_date=date(2027, 12, 31),
    fields={"UF_CONTRACT_NO": "MV-17"},
)


def _row(payload: Payload, columns: tuple[str, ...]) -> dict[str, Any]:
    rows = Rows()
    action = Action("a-1", "r-1", "v-1", "DEAL:1", "e-1", "e-0", AT, ActionMode.IMMEDIATE, payload)
    rows.add_action(action)
    (row,) = rows.leads or rows.deals or rows.activities
    return {
        column: value.obj if isinstance(value, Jsonb) else value
        for column, value in zip(columns, row, strict=True)
    }


def test_every_planned_activity_field_has_its_column() -> None:
    activity = PlanActivity(
        activity_id="act-1",
        subject="Call Anna",
        description="About the renewal",
        deadline=AT,
        duration_minutes=45,
        responsible_id="u-7",
        stage_id="WON",
        color="#FF8800",
        add_to_calendar=True,
        clients=(Client("p-1", "contact", "Anna"),),
        invitee_ids=("u-8",),
        address="Hauptstr. 1",
        location_id="room-1",
        link="https://crm.test/deal/1",
        files=("https://files.test/offer.pdf",),
        complete_on_stage_exit=True,
        activity_type="call",
    )
    row = _row(activity, ACTIVITY_COLUMNS)
    stored = {
        "clients": ("client_ids", ["p-1"]),
        "invitee_ids": ("invitee_ids", ["u-8"]),
        "files": ("files", ["https://files.test/offer.pdf"]),
    }
    for name in _names(PlanActivity):
        column, value = stored.get(name, (name, getattr(activity, name)))
        assert row[column] == value, name


def test_every_created_lead_field_has_its_column_or_is_announced_only() -> None:
    lead = CreateLead(
        lead_id="lead-1",
        title="Repeat",
        responsible_id="u-7",
        company=ITEM.company,
        contacts=ITEM.contacts,
        is_repeat=True,
        pipeline_id="leads",
        stage_id="NEW",
        copy_depth=1,
    )
    row = _row(lead, LEAD_COLUMNS)
    stored = {"company": ("company_id", "c-1"), "contacts": ("contact_ids", ["p-1"])}
    # The lead's pipeline, stage and generation reach the CRM in its announcement
    # (created_items.announcement); the leads table has no column for them.
    announced_only = {"pipeline_id", "stage_id", "copy_depth"}
    for name in _names(CreateLead):
        if name not in announced_only:
            column, value = stored.get(name, (name, getattr(lead, name)))
            assert row[column] == value, name


def test_every_copied_deal_field_and_item_field_has_its_column() -> None:
    deal = CopyDeal("deal-1", "installation", "NEW", ITEM, "DEAL:1", 1)
    row = _row(deal, DEAL_COLUMNS)
    stored = {"company": ("company_id", "c-1"), "contacts": ("contact_ids", ["p-1"])}
    for name in _names(CopyDeal):
        if name != "item":
            assert row[name] == getattr(deal, name), name
    for name in _names(Item):
        column, value = stored.get(name, (name, getattr(ITEM, name)))
        assert row[column] == value, name
    assert row["company_title"] == "Müller GmbH"
    assert row["contacts"] == [dataclasses.asdict(c) for c in ITEM.contacts]
