"""Avro dicts as plain JSON values, for people reading topics (`events tail`)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from automation_core.event_json import format_timestamp


def avro_to_json(value: Any) -> Any:
    """Timestamps as UTC ISO-8601 (`...Z`), dates as YYYY-MM-DD, decimals as strings.

    A branch of a union of several records, read as `(fullname, dict)`, becomes
    `{"ShortName": {...}}` (Avro's JSON encoding of unions, with the short name).
    """
    if isinstance(value, dict):
        return {k: avro_to_json(v) for k, v in value.items()}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return {value[0].rsplit(".", 1)[-1]: avro_to_json(value[1])}
    if isinstance(value, list | tuple):
        return [avro_to_json(v) for v in value]
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
