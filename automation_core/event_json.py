"""The JSON form of StageChanged (docs/producers.md): strict validation and the reverse."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from automation_core.errors import InvalidEvent
from automation_core.model import Company, Contact, EntityType, FieldValue, Item, StageChanged

# Limits far above any real CRM record, low enough that one line cannot exhaust memory
# downstream (a 10,000-contact event would fan out into every action that copies it).
MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 10_000
MAX_CONTACTS = 1_000
MAX_FIELDS = 1_000
MAX_FIELD_VALUES = 1_000
MAX_AMOUNT_LENGTH = 64
MAX_COPY_DEPTH = 2**31 - 1  # an Avro int

_TOP_LEVEL_KEYS = frozenset(
    {
        "event_id",
        "occurred_at",
        "entity_type",
        "item_id",
        "pipeline_id",
        "stage_id",
        "item",
        "previous_stage_id",
        "created_by_automation",
        "copy_depth",
        "source_item_key",
    }
)
_ITEM_KEYS = frozenset(
    {
        "title",
        "responsible_id",
        "amount",
        "currency",
        "company",
        "contacts",
        "begin_date",
        "close_date",
        "fields",
    }
)
_COMPANY_KEYS = frozenset({"id", "title"})
_CONTACT_KEYS = frozenset({"id", "name", "last_name", "email", "phone"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF, CR allowed
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MISSING = object()


def _fail(path: str, reason: str) -> InvalidEvent:
    return InvalidEvent(f"{path}: {reason}", field=path)


def _object(value: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"must be an object, got {_json_type(value)}")
    for key in value:
        if key not in allowed:
            raise _fail(_join(path, key), "unknown field")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _join(path: str, key: str) -> str:
    shown = key if key.isidentifier() else json.dumps(key[:50])
    if not path:
        return shown
    return f"{path}.{shown}" if key.isidentifier() else f"{path}[{shown}]"


def _get(obj: Mapping[str, Any], key: str, path: str, *, required: bool) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and required):
        if required:
            raise _fail(_join(path, key), "required")
        return None
    return value


def _string(value: Any, path: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, got {_json_type(value)}")
    if len(value) > max_length:
        raise _fail(path, f"longer than {max_length} characters ({len(value)})")
    if _SURROGATE.search(value):
        raise _fail(path, "invalid unicode (lone surrogate)")
    return value


def _id(value: Any, path: str) -> str:
    text = _string(value, path, MAX_ID_LENGTH)
    if not text:
        raise _fail(path, "must not be empty")
    if _CONTROL.search(text):
        raise _fail(path, "must not contain control characters")
    return text


def _text(value: Any, path: str) -> str:
    text = _string(value, path, MAX_TEXT_LENGTH)
    if _TEXT_CONTROL.search(text):
        raise _fail(path, "must not contain control characters")
    return text


def _optional_id(value: Any, path: str) -> str | None:
    return None if value is None else _id(value, path)


def _optional_text(value: Any, path: str) -> str | None:
    return None if value is None else _text(value, path)


def _timestamp(value: Any, path: str) -> datetime:
    text = _string(value, path, 64)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(path, f"not an ISO-8601 timestamp: {text!r}") from None
    if parsed.utcoffset() is None:
        raise _fail(path, "needs a UTC offset or Z (naive timestamps are ambiguous)")
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise _fail(path, "out of range") from None
    # The wire carries milliseconds: truncate here so the event equals its decoding.
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _date(value: Any, path: str) -> date | None:
    if value is None:
        return None
    text = _string(value, path, 10)
    if not _DATE.fullmatch(text):
        raise _fail(path, f"must be a date YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail(path, f"not a valid date: {text!r}") from None


def _amount(value: Any, path: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise _fail(path, 'amounts are decimals, never floats: write it as a string, "12000.00"')
    if isinstance(value, bool):
        raise _fail(path, "must be a decimal string, got boolean")
    if isinstance(value, int):
        value = str(value)
    text = _string(value, path, MAX_AMOUNT_LENGTH)
    if not _DECIMAL.fullmatch(text):
        raise _fail(path, f'must be a decimal like "12000.00", got {text!r}')
    return Decimal(text)


def _bool(value: Any, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(path, f"must be true or false, got {_json_type(value)}")
    return value


def _copy_depth(value: Any, path: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {_json_type(value)}")
    if not 0 <= value <= MAX_COPY_DEPTH:
        raise _fail(path, f"must be between 0 and {MAX_COPY_DEPTH}")
    return value


def _company(value: Any, path: str) -> Company | None:
    if value is None:
        return None
    obj = _object(value, path, _COMPANY_KEYS)
    return Company(
        id=_id(_get(obj, "id", path, required=True), f"{path}.id"),
        title=_text(_get(obj, "title", path, required=True), f"{path}.title"),
    )


def _contacts(value: Any, path: str) -> tuple[Contact, ...]:
    if not isinstance(value, list):
        raise _fail(path, f"must be an array, got {_json_type(value)}")
    if len(value) > MAX_CONTACTS:
        raise _fail(path, f"more than {MAX_CONTACTS} contacts ({len(value)})")
    contacts = []
    for index, raw in enumerate(value):
        at = f"{path}[{index}]"
        obj = _object(raw, at, _CONTACT_KEYS)
        contacts.append(
            Contact(
                id=_id(_get(obj, "id", at, required=True), f"{at}.id"),
                name=_text(_get(obj, "name", at, required=True), f"{at}.name"),
                last_name=_optional_text(
                    _get(obj, "last_name", at, required=False), f"{at}.last_name"
                ),
                email=_optional_text(_get(obj, "email", at, required=False), f"{at}.email"),
                phone=_optional_text(_get(obj, "phone", at, required=False), f"{at}.phone"),
            )
        )
    return tuple(contacts)


def _fields(value: Any, path: str) -> dict[str, FieldValue]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, f"must be an object, got {_json_type(value)}")
    if len(value) > MAX_FIELDS:
        raise _fail(path, f"more than {MAX_FIELDS} fields ({len(value)})")
    fields: dict[str, FieldValue] = {}
    for key, raw in value.items():
        at = _join(path, key)
        _id(key, f"{path} (field name {json.dumps(key[:50])})")
        if raw is None or isinstance(raw, str):
            fields[key] = _optional_text(raw, at)
        elif isinstance(raw, list):
            if len(raw) > MAX_FIELD_VALUES:
                raise _fail(at, f"more than {MAX_FIELD_VALUES} values ({len(raw)})")
            fields[key] = [_text(v, f"{at}[{i}]") for i, v in enumerate(raw)]
        else:
            raise _fail(at, f"must be a string, a list of strings or null, got {_json_type(raw)}")
    return fields


def _item(value: Any, path: str) -> Item:
    obj = _object(value, path, _ITEM_KEYS)
    return Item(
        title=_text(_get(obj, "title", path, required=True), f"{path}.title"),
        responsible_id=_id(
            _get(obj, "responsible_id", path, required=True), f"{path}.responsible_id"
        ),
        amount=_amount(_get(obj, "amount", path, required=False), f"{path}.amount"),
        currency=_optional_id(_get(obj, "currency", path, required=False), f"{path}.currency"),
        company=_company(_get(obj, "company", path, required=False), f"{path}.company"),
        contacts=_contacts(_get(obj, "contacts", path, required=True), f"{path}.contacts"),
        begin_date=_date(_get(obj, "begin_date", path, required=False), f"{path}.begin_date"),
        close_date=_date(_get(obj, "close_date", path, required=False), f"{path}.close_date"),
        fields=_fields(_get(obj, "fields", path, required=False), f"{path}.fields"),
    )


def _entity_type(value: Any, path: str) -> EntityType:
    text = _string(value, path, MAX_ID_LENGTH)
    try:
        return EntityType(text)
    except ValueError:
        allowed = " or ".join(t.value for t in EntityType)
        raise _fail(path, f"must be {allowed}, got {text[:50]!r}") from None


def parse_stage_changed(obj: Any) -> StageChanged:
    """Validate a decoded JSON value as a StageChanged; raise `InvalidEvent` naming the field."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"event: must be an object, got {_json_type(obj)}", field="")
    event = _object(obj, "", _TOP_LEVEL_KEYS)

    def required(key: str) -> Any:
        return _get(event, key, "", required=True)

    def optional(key: str) -> Any:
        return _get(event, key, "", required=False)

    return StageChanged(
        event_id=_id(required("event_id"), "event_id"),
        occurred_at=_timestamp(required("occurred_at"), "occurred_at"),
        entity_type=_entity_type(required("entity_type"), "entity_type"),
        item_id=_id(required("item_id"), "item_id"),
        pipeline_id=_id(required("pipeline_id"), "pipeline_id"),
        stage_id=_id(required("stage_id"), "stage_id"),
        item=_item(required("item"), "item"),
        previous_stage_id=_optional_id(optional("previous_stage_id"), "previous_stage_id"),
        created_by_automation=_bool(optional("created_by_automation"), "created_by_automation"),
        copy_depth=_copy_depth(optional("copy_depth"), "copy_depth"),
        source_item_key=_optional_id(optional("source_item_key"), "source_item_key"),
    )


def format_timestamp(value: datetime) -> str:
    """UTC ISO-8601 with `Z`, milliseconds only when there are any."""
    utc = value.astimezone(UTC)
    spec = "seconds" if utc.microsecond == 0 else "milliseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def stage_changed_to_json(event: StageChanged) -> dict[str, Any]:
    """The JSON form of `event`; optional members appear only when set."""
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "occurred_at": format_timestamp(event.occurred_at),
        "entity_type": event.entity_type.value,
        "item_id": event.item_id,
        "pipeline_id": event.pipeline_id,
        "stage_id": event.stage_id,
    }
    if event.previous_stage_id is not None:
        out["previous_stage_id"] = event.previous_stage_id
    out["item"] = item_to_json(event.item)
    if event.created_by_automation:
        out["created_by_automation"] = True
    if event.copy_depth:
        out["copy_depth"] = event.copy_depth
    if event.source_item_key is not None:
        out["source_item_key"] = event.source_item_key
    return out


def item_to_json(item: Item) -> dict[str, Any]:
    """The JSON form of an item, as in an event; optional members only when set."""
    item_json: dict[str, Any] = {"title": item.title, "responsible_id": item.responsible_id}
    if item.amount is not None:
        item_json["amount"] = str(item.amount)
    if item.currency is not None:
        item_json["currency"] = item.currency
    if item.company is not None:
        item_json["company"] = {"id": item.company.id, "title": item.company.title}
    item_json["contacts"] = [
        {
            k: v
            for k, v in (
                ("id", c.id),
                ("name", c.name),
                ("last_name", c.last_name),
                ("email", c.email),
                ("phone", c.phone),
            )
            if v is not None
        }
        for c in item.contacts
    ]
    if item.begin_date is not None:
        item_json["begin_date"] = item.begin_date.isoformat()
    if item.close_date is not None:
        item_json["close_date"] = item.close_date.isoformat()
    if item.fields:
        item_json["fields"] = {
            k: list(v) if isinstance(v, list | tuple) else v for k, v in item.fields.items()
        }
    return item_json
