"""The allowlisted field map: what each kind of canonical path reads from an event."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from automation_core.fields import Value, field_value
from automation_core.model import Contact
from tests.unit.rule_builders import event, item

EVENT = event(previous_stage_id=None)
BARE = event(
    the_item=item(company=None, contacts=(Contact("p-3", "Cem"),), fields={"UF_TAGS": "one"})
)
NOBODY = event(the_item=item(contacts=()))


@pytest.mark.parametrize(
    ("ev", "path", "expected"),
    [
        (EVENT, "item_id", "4711"),
        (EVENT, "entity_type", "DEAL"),
        (EVENT, "stage_id", "WON"),
        (EVENT, "previous_stage_id", None),
        (EVENT, "item.title", "Maintenance Müller GmbH"),
        (EVENT, "item.amount", Decimal("12000.00")),
        (EVENT, "item.close_date", date(2026, 11, 30)),
        (EVENT, "item.UF_CONTRACT_NO", "MV-17"),
        (EVENT, "item.UF_TAGS", ["vip", "north"]),
        (BARE, "item.UF_TAGS", "one"),
        (EVENT, "item.UF_MISSING", None),
        (EVENT, "company.title", "Müller GmbH"),
        (BARE, "company.id", None),
        (EVENT, "contact.email", "anna@example.com"),
        (EVENT, "contact.full_name", "Anna Müller"),
        (BARE, "contact.full_name", "Cem"),
        (NOBODY, "contact.email", None),
        (EVENT, "contacts", ["Anna Müller", "Ben Kurz"]),
        (EVENT, "contacts.email", ["anna@example.com", "ben@example.com"]),
        (EVENT, "contacts.phone", ["+49 30 1234"]),
        (NOBODY, "contacts", []),
    ],
)
def test_each_kind_of_path_reads_its_value(ev: object, path: str, expected: Value) -> None:
    assert field_value(ev, path) == expected  # type: ignore[arg-type]


def test_a_list_field_is_a_copy_a_condition_cannot_change() -> None:
    read = field_value(EVENT, "item.UF_TAGS")
    assert isinstance(read, list)
    read.append("changed")
    assert EVENT.item.fields["UF_TAGS"] == ["vip", "north"]
