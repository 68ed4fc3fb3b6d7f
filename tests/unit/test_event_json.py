"""The StageChanged JSON contract: what `events produce` accepts, and what it names as wrong."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automation_core.errors import InvalidEvent
from automation_core.event_json import parse_stage_changed, stage_changed_to_json
from automation_core.model import Company, Contact, EntityType, Item, StageChanged
from runtime import codec
from tests.unit.strategies import stage_changes_of

# What the contract admits (narrower than what the codec can carry): no control
# characters, fixed-point amounts within the length limit, identifiers as field names.
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n"), max_size=12
)
contract_items = st.builds(
    Item,
    title=text,
    responsible_id=ids,
    amount=st.none() | st.decimals(min_value=-(10**15), max_value=10**15, places=2),
    currency=st.none() | ids,
    company=st.none() | st.builds(Company, id=ids, title=text),
    contacts=st.lists(
        st.builds(
            Contact,
            id=ids,
            name=text,
            last_name=st.none() | text,
            email=st.none() | text,
            phone=st.none() | text,
        ),
        max_size=3,
    ).map(tuple),
    begin_date=st.none() | st.dates(),
    close_date=st.none() | st.dates(),
    fields=st.dictionaries(ids, st.none() | text | st.lists(text, max_size=3), max_size=4),
)
contract_events = stage_changes_of(contract_items)

DESIGN_EXAMPLE: dict[str, Any] = {
    "event_id": "evt-1001",
    "occurred_at": "2026-11-26T10:00:00Z",
    "entity_type": "DEAL",
    "item_id": "4711",
    "pipeline_id": "sales",
    "stage_id": "WON",
    "previous_stage_id": "NEGOTIATION",
    "item": {
        "title": "Maintenance Müller GmbH",
        "responsible_id": "u-7",
        "amount": "12000.00",
        "currency": "EUR",
        "company": {"id": "c-1", "title": "Müller GmbH"},
        "contacts": [
            {
                "id": "p-1",
                "name": "Anna",
                "last_name": "Müller",
                "email": "anna@example.com",
                "phone": "+49 30 1234",
            }
        ],
        "begin_date": "2026-11-01",
        "close_date": "2026-11-30",
        "fields": {"UF_CONTRACT_NO": "MV-17"},
    },
}
_DELETE = object()


def _changed(path: str, value: Any) -> dict[str, Any]:
    """The design example with the value at a dotted path (list indexes as numbers) replaced."""
    event = copy.deepcopy(DESIGN_EXAMPLE)
    *parents, last = path.split(".")
    target: Any = event
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return event


def test_the_design_example_parses_into_the_domain_event() -> None:
    event = parse_stage_changed(DESIGN_EXAMPLE)
    assert event.key == "DEAL:4711"
    assert event.entity_type is EntityType.DEAL
    assert event.occurred_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert event.item.amount == Decimal("12000.00")
    assert event.item.begin_date == date(2026, 11, 1)
    assert event.item.company is not None and event.item.company.title == "Müller GmbH"
    assert event.item.contacts[0].last_name == "Müller"
    assert event.item.fields == {"UF_CONTRACT_NO": "MV-17"}
    assert event.previous_stage_id == "NEGOTIATION"


def test_only_the_required_members_are_needed() -> None:
    minimal = {k: v for k, v in DESIGN_EXAMPLE.items() if k != "previous_stage_id"}
    minimal["item"] = {"title": "T", "responsible_id": "u-1", "contacts": []}
    event = parse_stage_changed(minimal)
    assert event.item.amount is None and event.item.company is None
    assert event.item.fields == {} and event.copy_depth == 0


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(
            "occurred_at",
            "2026-11-26T11:00:00+01:00",
            datetime(2026, 11, 26, 10, tzinfo=UTC),
            id="offset-converted-to-utc",
        ),
        pytest.param(
            "occurred_at",
            "2026-11-26T10:00:00.123456Z",
            datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC),
            id="sub-millisecond-truncated-like-the-wire",
        ),
        pytest.param("item.amount", 12000, Decimal("12000"), id="integer-amount"),
        pytest.param("item.amount", "-0.50", Decimal("-0.50"), id="negative-amount"),
        pytest.param(
            "item.fields",
            {"UF_TAGS": ["a", "b"], "UF_NONE": None},
            {"UF_TAGS": ["a", "b"], "UF_NONE": None},
            id="list-and-null-fields",
        ),
        pytest.param("item.company", None, None, id="null-company"),
    ],
)
def test_accepted_variants_parse_to_the_expected_value(
    path: str, value: Any, expected: Any
) -> None:
    event: Any = parse_stage_changed(_changed(path, value))
    for part in path.split("."):
        event = getattr(event, part)
    assert event == expected


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param("event_id", _DELETE, "event_id: required", id="missing-event-id"),
        pytest.param("event_id", None, "event_id: required", id="null-event-id"),
        pytest.param("event_id", "", "event_id: must not be empty", id="empty-event-id"),
        pytest.param(
            "event_id", 1001, "event_id: must be a string, got number", id="numeric-event-id"
        ),
        pytest.param(
            "item_id",
            "47\n11",
            "item_id: must not contain control characters",
            id="control-character-in-id",
        ),
        pytest.param("item_id", "x" * 257, "item_id: longer than 256", id="overlong-id"),
        pytest.param("occurred_at", _DELETE, "occurred_at: required", id="missing-occurred-at"),
        pytest.param(
            "occurred_at",
            "2026-11-26T10:00:00",
            "occurred_at: needs a UTC offset or Z",
            id="naive-timestamp",
        ),
        pytest.param(
            "occurred_at",
            "yesterday",
            "occurred_at: not an ISO-8601 timestamp",
            id="unparseable-timestamp",
        ),
        pytest.param(
            "entity_type", "CONTACT", "entity_type: must be DEAL or LEAD", id="unknown-entity-type"
        ),
        pytest.param("pipeline_id", _DELETE, "pipeline_id: required", id="missing-pipeline"),
        pytest.param("stage_id", _DELETE, "stage_id: required", id="missing-stage"),
        pytest.param("item", _DELETE, "item: required", id="missing-item"),
        pytest.param("item", [], "item: must be an object, got array", id="item-not-object"),
        pytest.param("item.title", _DELETE, "item.title: required", id="missing-title"),
        pytest.param(
            "item.title", "x" * 10_001, "item.title: longer than 10000", id="overlong-title"
        ),
        pytest.param(
            "item.responsible_id",
            _DELETE,
            "item.responsible_id: required",
            id="missing-responsible",
        ),
        pytest.param("item.contacts", _DELETE, "item.contacts: required", id="missing-contacts"),
        pytest.param(
            "item.contacts",
            {"id": "p-1"},
            "item.contacts: must be an array",
            id="contacts-not-array",
        ),
        pytest.param(
            "item.contacts",
            [{"id": str(i), "name": "n"} for i in range(1001)],
            "item.contacts: more than 1000 contacts",
            id="too-many-contacts",
        ),
        pytest.param(
            "item.contacts.0.id", _DELETE, "item.contacts[0].id: required", id="contact-without-id"
        ),
        pytest.param(
            "item.contacts.0.name",
            7,
            "item.contacts[0].name: must be a string",
            id="contact-name-not-string",
        ),
        pytest.param(
            "item.company",
            {"id": "c-1"},
            "item.company.title: required",
            id="company-without-title",
        ),
        pytest.param(
            "item.amount",
            12000.5,
            "item.amount: amounts are decimals, never floats",
            id="float-amount",
        ),
        pytest.param(
            "item.amount", "12,000.00", "item.amount: must be a decimal", id="formatted-amount"
        ),
        pytest.param("item.amount", "NaN", "item.amount: must be a decimal", id="nan-amount"),
        pytest.param(
            "item.amount",
            True,
            "item.amount: must be a decimal string, got boolean",
            id="boolean-amount",
        ),
        pytest.param(
            "item.begin_date",
            "01.11.2026",
            "item.begin_date: must be a date YYYY-MM-DD",
            id="german-date",
        ),
        pytest.param(
            "item.close_date",
            "2026-02-30",
            "item.close_date: not a valid date",
            id="impossible-date",
        ),
        pytest.param(
            "item.fields",
            {"UF_X": 1},
            "item.fields.UF_X: must be a string, a list",
            id="numeric-field-value",
        ),
        pytest.param(
            "item.fields",
            {"UF_X": ["a", 2]},
            "item.fields.UF_X[1]: must be a string",
            id="numeric-field-list-value",
        ),
        pytest.param(
            "item.fields",
            {"UF_X": "\ud800"},
            "item.fields.UF_X: invalid unicode",
            id="lone-surrogate",
        ),
        pytest.param("item.ammount", "1", "item.ammount: unknown field", id="misspelt-field"),
        pytest.param("copy_depth", -1, "copy_depth: must be between 0", id="negative-depth"),
        pytest.param("copy_depth", "1", "copy_depth: must be an integer", id="string-depth"),
        pytest.param(
            "created_by_automation",
            "yes",
            "created_by_automation: must be true or false",
            id="string-boolean",
        ),
    ],
)
def test_invalid_events_are_rejected_naming_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_stage_changed(_changed(path, value))
    assert str(caught.value).startswith(message), str(caught.value)
    assert caught.value.reason == "invalid_event"


@pytest.mark.parametrize(
    "value",
    [pytest.param([], id="array"), pytest.param("{}", id="string"), pytest.param(None, id="null")],
)
def test_a_value_that_is_not_an_object_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidEvent, match="event: must be an object"):
        parse_stage_changed(value)


def test_the_json_form_of_the_design_example_is_the_design_example() -> None:
    assert stage_changed_to_json(parse_stage_changed(DESIGN_EXAMPLE)) == DESIGN_EXAMPLE


@given(contract_events)
def test_an_event_in_its_json_form_parses_back_to_the_same_event(event: StageChanged) -> None:
    parsed_back = parse_stage_changed(json.loads(json.dumps(stage_changed_to_json(event))))
    normalised = codec.decode(codec.encode(event))  # the JSON form keeps what the wire keeps
    assert parsed_back.occurred_at.tzinfo == UTC
    assert parsed_back == normalised
