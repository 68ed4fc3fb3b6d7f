"""Current Action and Execution messages read straight into the sink's rows.

Decoding into domain records and then into rows was most of the sink's own work. A
message of the current Action or Execution schema in single-object encoding is read
here field by field into the row `Rows.add_action` / `Rows.add_execution` builds from
the decoded record, and the announcement of a created deal or lead is put together from
the message's own bytes (the item, ids and times are the same Avro values).

Anything else is not read here (`read` returns None) and takes the codec's path, which
also names the reason of a record that never decodes: an older writer, the registry wire
format, a webhook action, and any body that is not plain canonical Avro (several array
blocks, a duplicate map key, an overlong varint, an amount not in its canonical text).
So a body is only read here when the codec would decode it to the same values and
re-encode the announcement to the same bytes. tests/unit/test_sink_row_reader.py holds
both paths to the same rows; a change to either schema must change this module too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from automation_core.model import ActionMode, EntityType, ExecutionStatus
from runtime import codec
from runtime.codec.avro_reader import read_long
from sinks.postgres.rows import ReadRows, execution_key_of

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS_SHIFT = date(1970, 1, 1).toordinal()
_MODES = frozenset(m.value for m in ActionMode)
_STATUSES = frozenset(s.value for s in ExecutionStatus)
_CREATED = "created-"
_DEAL = b"\x08" + EntityType.DEAL.value.encode()
_LEAD = b"\x08" + EntityType.LEAD.value.encode()
_NULL = b"\x00"
_TRUE = b"\x01"
_SECOND = b"\x02"  # union branch 1
_EMPTY = b"\x00"  # an empty array or map


class _NotPlain(Exception):
    """The body is left to the codec (see the module's docstring)."""


class RowReader:
    """Reads messages of the current Action and Execution schemas into `ReadRows`."""

    def __init__(self) -> None:
        fingerprints = codec.fingerprints()
        self._action = codec.MAGIC + fingerprints["Action"]
        self._execution = codec.MAGIC + fingerprints["Execution"]

    def read(self, data: bytes) -> ReadRows | None:
        """The rows of `data`; None when the codec's path must decode it."""
        header = data[: codec.HEADER_LENGTH]
        try:
            if header == self._execution:
                return _execution(data)
            if header == self._action:
                return _action(data)
        except (_NotPlain, IndexError, ValueError, ArithmeticError, OverflowError):
            return None
        return None


# -- Avro primitives: each returns (value, position after it) ------------------------


def _long(data: bytes, pos: int) -> tuple[int, int]:
    value, end = read_long(data, pos)  # a long past 10 bytes: Malformed, a ValueError
    if end - pos > 1 and not data[end - 1]:
        raise _NotPlain  # overlong: a writer would have used fewer bytes
    return value, end


def _string(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = _long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise _NotPlain
    return data[pos:end].decode(), end


def _optional_string(data: bytes, pos: int) -> tuple[str | None, int]:
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch != 2:
        raise _NotPlain
    return _string(data, pos + 1)


def _timestamp(data: bytes, pos: int) -> tuple[datetime, int]:
    millis, pos = _long(data, pos)
    return _EPOCH + timedelta(microseconds=millis * 1000), pos  # fastavro's arithmetic


def _optional_timestamp(data: bytes, pos: int) -> tuple[datetime | None, int]:
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch != 2:
        raise _NotPlain
    return _timestamp(data, pos + 1)


def _optional_date(data: bytes, pos: int) -> tuple[date | None, int]:
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch != 2:
        raise _NotPlain
    days, pos = _long(data, pos + 1)
    return date.fromordinal(days + _DAYS_SHIFT), pos


def _boolean(data: bytes, pos: int) -> tuple[bool, int]:
    b = data[pos]
    if b > 1:
        raise _NotPlain
    return b == 1, pos + 1


def _count(data: bytes, pos: int) -> tuple[int, int]:
    """The item count of an array or map written as one block (else not plain)."""
    count, pos = _long(data, pos)
    if count < 0:
        raise _NotPlain
    return count, pos


def _end_of_block(data: bytes, pos: int) -> int:
    if data[pos] != 0:
        raise _NotPlain
    return pos + 1


def _strings(data: bytes, pos: int) -> tuple[list[str], int]:
    count, pos = _count(data, pos)
    if not count:
        return [], pos
    out = []
    for _ in range(count):
        value, pos = _string(data, pos)
        out.append(value)
    return out, _end_of_block(data, pos)


# -- records ------------------------------------------------------------------------


def _company(data: bytes, pos: int) -> tuple[tuple[str, str] | None, int]:
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch != 2:
        raise _NotPlain
    company_id, pos = _string(data, pos + 1)
    title, pos = _string(data, pos)
    return (company_id, title), pos


def _contacts(data: bytes, pos: int) -> tuple[list[dict[str, Any]], int]:
    """Each contact as `dataclasses.asdict` gives it (the deals' `contacts` column)."""
    count, pos = _count(data, pos)
    if not count:
        return [], pos
    out = []
    for _ in range(count):
        contact_id, pos = _string(data, pos)
        name, pos = _string(data, pos)
        last_name, pos = _optional_string(data, pos)
        email, pos = _optional_string(data, pos)
        phone, pos = _optional_string(data, pos)
        out.append(
            {"id": contact_id, "name": name, "last_name": last_name, "email": email, "phone": phone}
        )
    return out, _end_of_block(data, pos)


def _fields(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    count, pos = _count(data, pos)
    if not count:
        return {}, pos
    out: dict[str, Any] = {}
    for _ in range(count):
        name, pos = _string(data, pos)
        if name in out:
            raise _NotPlain
        branch, pos = _long(data, pos)
        if branch == 0:
            out[name] = None
        elif branch == 1:
            out[name], pos = _string(data, pos)
        elif branch == 2:
            out[name], pos = _strings(data, pos)
        else:
            raise _NotPlain
    return out, _end_of_block(data, pos)


def _amount(data: bytes, pos: int) -> tuple[Decimal | None, int]:
    text, pos = _optional_string(data, pos)
    if text is None:
        return None, pos
    amount = Decimal(text)
    if not amount.is_finite() or str(amount) != text:
        raise _NotPlain  # the codec refuses it, or would re-encode it differently
    return amount, pos


def _execution(data: bytes) -> ReadRows:
    pos = codec.HEADER_LENGTH
    rule_id, pos = _string(data, pos)
    item_key, pos = _string(data, pos)
    event_id, pos = _string(data, pos)
    status, pos = _string(data, pos)
    if status not in _STATUSES:
        raise _NotPlain
    recorded_at, pos = _timestamp(data, pos)
    action_id, pos = _optional_string(data, pos)
    rule_version, pos = _optional_string(data, pos)
    due_at, pos = _optional_timestamp(data, pos)
    reason, pos = _optional_string(data, pos)
    if pos != len(data):
        raise _NotPlain
    key = execution_key_of(event_id, rule_id, status, action_id, due_at)
    row = (
        key,
        action_id,
        rule_id,
        rule_version,
        item_key,
        event_id,
        status,
        due_at,
        reason,
        recorded_at,
    )
    return ReadRows("executions", row, None, None)


def _action(data: bytes) -> ReadRows:
    pos = codec.HEADER_LENGTH
    action_id, pos = _string(data, pos)
    rule_id, pos = _string(data, pos)
    _rule_version, pos = _string(data, pos)
    item_key_at = pos
    item_key, pos = _string(data, pos)
    item_key_bytes = data[item_key_at:pos]
    _event_id, pos = _string(data, pos)
    stage_entry_id, pos = _string(data, pos)
    occurred_at_at = pos
    occurred_at, pos = _timestamp(data, pos)
    at = data[occurred_at_at:pos]
    mode, pos = _string(data, pos)
    if mode not in _MODES:
        raise _NotPlain
    due_at_at = pos + 1
    due_at, pos = _optional_timestamp(data, pos)
    if due_at is not None:
        at = data[due_at_at:pos]  # announcements happen at the due time, when there is one
    branch, pos = _long(data, pos)
    if branch == 0:
        read = _create_lead(
            data, pos, action_id, rule_id, (item_key, item_key_bytes), occurred_at, at
        )
    elif branch == 1:
        read = _copy_deal(data, pos, action_id, rule_id, occurred_at, at)
    elif branch == 2:
        read = _plan_activity(data, pos, action_id, rule_id, item_key, stage_entry_id, occurred_at)
    elif branch == 3:
        read = _complete_activities(data, pos, action_id, item_key, stage_entry_id)
    else:
        raise _NotPlain  # a webhook: no row (the codec's path says so)
    rows, end = read
    if end != len(data):
        raise _NotPlain
    return rows


def _create_lead(
    data: bytes,
    pos: int,
    action_id: str,
    rule_id: str,
    item_key: tuple[str, bytes],
    occurred_at: datetime,
    at: bytes,
) -> tuple[ReadRows, int]:
    """`item_key`: the action's item key and its encoding (the announcement's source)."""
    start = pos
    lead_id, pos = _string(data, pos)
    id_end = title_at = pos
    title, pos = _string(data, pos)
    responsible_id, pos = _string(data, pos)
    company_at = pos
    company, pos = _company(data, pos)
    contacts, pos = _contacts(data, pos)
    contacts_end = pos
    is_repeat, pos = _boolean(data, pos)
    pipeline_at = pos + 1
    pipeline_id, pos = _optional_string(data, pos)
    pipeline = data[pipeline_at:pos]
    stage_at = pos + 1
    stage_id, pos = _optional_string(data, pos)
    stage = data[stage_at:pos]
    depth_at = pos
    _copy_depth, pos = _long(data, pos)
    row = (
        action_id,
        rule_id,
        lead_id,
        item_key[0],
        title,
        responsible_id,
        None if company is None else company[0],
        [c["id"] for c in contacts],
        is_repeat,
        occurred_at,
    )
    announcement = None
    if pipeline_id and stage_id:
        body = b"".join(
            (
                _encoded(_CREATED + lead_id),
                at,
                _LEAD,
                data[start:id_end],
                pipeline,
                stage,
                _NULL,  # previous_stage_id
                data[title_at:company_at],  # item: title, responsible_id,
                _NULL + _NULL,  # amount, currency,
                data[company_at:contacts_end],  # company, contacts,
                _NULL + _NULL + _EMPTY,  # begin_date, close_date, fields
                _TRUE,  # created_by_automation
                data[depth_at:pos],
                _SECOND + item_key[1],  # source_item_key
            )
        )
        announcement = (_key(EntityType.LEAD, lead_id), codec.header("StageChanged") + body)
    return ReadRows("leads", row, action_id, announcement), pos


def _copy_deal(
    data: bytes, pos: int, action_id: str, rule_id: str, occurred_at: datetime, at: bytes
) -> tuple[ReadRows, int]:
    ids_at = pos
    deal_id, pos = _string(data, pos)
    pipeline_id, pos = _string(data, pos)
    stage_id, pos = _string(data, pos)
    item_at = pos
    title, pos = _string(data, pos)
    responsible_id, pos = _string(data, pos)
    amount, pos = _amount(data, pos)
    currency, pos = _optional_string(data, pos)
    company, pos = _company(data, pos)
    contacts, pos = _contacts(data, pos)
    begin_date, pos = _optional_date(data, pos)
    close_date, pos = _optional_date(data, pos)
    fields, pos = _fields(data, pos)
    item_end = pos
    source_item_key, pos = _string(data, pos)
    source_end = depth_at = pos
    copy_depth, pos = _long(data, pos)
    row = (
        action_id,
        rule_id,
        deal_id,
        source_item_key,
        title,
        pipeline_id,
        stage_id,
        responsible_id,
        amount,
        currency,
        None if company is None else company[0],
        [c["id"] for c in contacts],
        Jsonb(fields),
        copy_depth,
        occurred_at,
        begin_date,
        close_date,
        None if company is None else company[1],
        Jsonb(contacts),
    )
    body = b"".join(
        (
            _encoded(_CREATED + deal_id),
            at,
            _DEAL,
            data[ids_at:item_at],  # item_id, pipeline_id, stage_id
            _NULL,  # previous_stage_id
            data[item_at:item_end],
            _TRUE,  # created_by_automation
            data[depth_at:pos],
            _SECOND + data[item_end:source_end],  # source_item_key
        )
    )
    announcement = (_key(EntityType.DEAL, deal_id), codec.header("StageChanged") + body)
    return ReadRows("deals", row, action_id, announcement), pos


def _plan_activity(
    data: bytes,
    pos: int,
    action_id: str,
    rule_id: str,
    item_key: str,
    stage_entry_id: str,
    occurred_at: datetime,
) -> tuple[ReadRows, int]:
    activity_id, pos = _string(data, pos)
    subject, pos = _string(data, pos)
    description, pos = _string(data, pos)
    deadline, pos = _timestamp(data, pos)
    duration_minutes, pos = _long(data, pos)
    responsible_id, pos = _string(data, pos)
    stage_id, pos = _string(data, pos)
    color, pos = _optional_string(data, pos)
    add_to_calendar, pos = _boolean(data, pos)
    count, pos = _count(data, pos)
    client_ids = []
    if count:
        for _ in range(count):
            client_id, pos = _string(data, pos)
            _kind, pos = _string(data, pos)
            _name, pos = _string(data, pos)
            _email, pos = _optional_string(data, pos)
            client_ids.append(client_id)
        pos = _end_of_block(data, pos)
    invitee_ids, pos = _strings(data, pos)
    address, pos = _optional_string(data, pos)
    location_id, pos = _optional_string(data, pos)
    link, pos = _optional_string(data, pos)
    files, pos = _strings(data, pos)
    complete_on_stage_exit, pos = _boolean(data, pos)
    activity_type, pos = _string(data, pos)
    row = (
        action_id,
        rule_id,
        activity_id,
        item_key,
        stage_id,
        stage_entry_id,
        subject,
        description,
        deadline,
        duration_minutes,
        responsible_id,
        color,
        add_to_calendar,
        client_ids,
        invitee_ids,
        address,
        location_id,
        link,
        files,
        complete_on_stage_exit,
        occurred_at,
        activity_type,
    )
    return ReadRows("activities", row, action_id, None), pos


def _complete_activities(
    data: bytes, pos: int, action_id: str, item_key: str, stage_entry_id: str
) -> tuple[ReadRows, int]:
    stage_id, pos = _string(data, pos)
    completed_at, pos = _timestamp(data, pos)
    row = (action_id, item_key, stage_id, stage_entry_id, completed_at)
    return ReadRows("completions", row, action_id, None), pos


# -- announcement parts -------------------------------------------------------------


def _encoded(value: str) -> bytes:
    """`value` as an Avro string: its zig-zag varint length, then its UTF-8 bytes."""
    data = value.encode()
    n = len(data) << 1
    prefix = bytearray()
    while n > 0x7F:
        prefix.append((n & 0x7F) | 0x80)
        n >>= 7
    prefix.append(n)
    return bytes(prefix) + data


def _key(entity_type: EntityType, item_id: str) -> bytes:
    return f"{entity_type.value}:{item_id}".encode()
