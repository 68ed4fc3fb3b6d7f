"""The allowlisted field map: which item, company and contact fields rules may read.

Conditions, templates and date-based time settings all name fields by path
(`item.amount`, `company.title`, `contact.email`, `contacts`, `item.UF_CONTRACT_NO`);
nothing outside this map is reachable, so a template cannot reach into Python objects.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Literal, cast

from automation_core.model import Contact, StageChanged

FieldType = Literal["string", "decimal", "date", "list"]
Value = str | Decimal | date | list[str] | None

_CUSTOM = re.compile(r"UF_[A-Z0-9_]{1,60}")
ITEM_FIELDS: dict[str, FieldType] = {
    "title": "string",
    "amount": "decimal",
    "currency": "string",
    "responsible_id": "string",
    "begin_date": "date",
    "close_date": "date",
}
EVENT_FIELDS: dict[str, FieldType] = {
    "item_id": "string",
    "pipeline_id": "string",
    "stage_id": "string",
    "previous_stage_id": "string",
    "entity_type": "string",
}
COMPANY_FIELDS = ("id", "title")
CONTACT_FIELDS = ("id", "name", "last_name", "full_name", "email", "phone")
DATE_FIELDS = frozenset({"item.begin_date", "item.close_date"})


def canonical_field(path: str) -> str | None:
    """The canonical spelling of `path`, or None when it is not an allowed field.

    Bare item fields and custom fields are accepted (`amount` → `item.amount`,
    `UF_X` → `item.UF_X`); `item.id` is `item_id`.
    """
    path = path.strip()
    if path in EVENT_FIELDS:
        return path
    if path == "item.id":
        return "item_id"
    if path in ITEM_FIELDS or _CUSTOM.fullmatch(path):
        return f"item.{path}"
    head, _, tail = path.partition(".")
    if head == "item" and (tail in ITEM_FIELDS or _CUSTOM.fullmatch(tail)):
        return path
    if head == "item" and tail in EVENT_FIELDS:
        return tail
    if head == "company" and tail in COMPANY_FIELDS:
        return path
    if head in ("contact", "contacts") and tail in CONTACT_FIELDS:
        return path
    if path == "contacts":
        return path
    return None


def is_custom(path: str) -> bool:
    return path.startswith("item.UF_")


def field_type(path: str) -> FieldType:
    """The type of a canonical field path (custom fields are strings or lists of strings)."""
    head, _, tail = path.partition(".")
    if head == "item" and tail in ITEM_FIELDS:
        return ITEM_FIELDS[tail]
    if head == "contacts":
        return "list"
    return "string"


def field_value(event: StageChanged, path: str) -> Value:
    """The value of canonical `path` for the item of `event` (None when absent)."""
    return field_reader(path)(event)


@functools.lru_cache(maxsize=4096)
def field_reader(path: str) -> Callable[[StageChanged], Value]:
    """`field_value(event, path)` as a function of the event, `path` read once: rules
    read the same few paths for every event, a dozen times per event at 1,000 rules."""
    head, _, tail = path.partition(".")
    if not tail:
        if path == "contacts":
            return _full_names
        attr = operator.attrgetter(path)

        def event_field(event: StageChanged) -> Value:
            raw = attr(event)
            return None if raw is None else str(raw)

        return event_field
    if head == "item":
        if tail.startswith("UF_"):

            def custom(event: StageChanged) -> Value:
                value = event.item.fields.get(tail)
                return list(value) if isinstance(value, list) else value

            return custom
        item_field = operator.attrgetter(f"item.{tail}")
        return cast(Callable[[StageChanged], Value], item_field)
    if head == "company":
        company_field = operator.attrgetter(tail)

        def company(event: StageChanged) -> Value:
            found = event.item.company
            return None if found is None else str(company_field(found))

        return company
    if head == "contact":

        def first_contact(event: StageChanged) -> Value:
            contacts = event.item.contacts
            return _contact_attr(contacts[0], tail) if contacts else None

        return first_contact

    def every_contact(event: StageChanged) -> Value:
        return [v for c in event.item.contacts if (v := _contact_attr(c, tail)) is not None]

    return every_contact


def _full_names(event: StageChanged) -> Value:
    return [c.full_name for c in event.item.contacts]


def _contact_attr(contact: Contact, attr: str) -> str | None:
    if attr == "full_name":
        return contact.full_name or None
    value: str | None = getattr(contact, attr)
    return value
