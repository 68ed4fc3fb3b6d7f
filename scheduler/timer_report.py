"""Read-only views of the timers table for operators: listings and counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class TimerRow:
    timer_id: str
    item_key: str
    rule_id: str
    stage_entry_id: str | None
    due_at: datetime
    status: str
    fired_at: datetime | None
    cancel_reason: str | None


@dataclass(frozen=True)
class TimerStats:
    pending: int
    overdue: int
    next_due: datetime | None
    fired: int
    cancelled: int


def list_timers(
    conn: psycopg.Connection,
    *,
    item_key: str | None = None,
    rule_id: str | None = None,
    due_before: datetime | None = None,
    status: str | None = "pending",
    limit: int = 100,
) -> list[TimerRow]:
    """Timers matching every given filter, in due order (pending only unless `status`)."""
    filters: list[sql.Composable] = []
    params: list[object] = []
    for column, value in (("item_key", item_key), ("rule_id", rule_id), ("status", status)):
        if value is not None:
            filters.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if due_before is not None:
        filters.append(sql.SQL("due_at < %s"))
        params.append(due_before)
    where = sql.SQL(" AND ").join(filters) if filters else sql.SQL("true")
    query = sql.SQL(
        "SELECT timer_id, item_key, rule_id, stage_entry_id, due_at, status, fired_at,"
        " cancel_reason FROM timers WHERE {} ORDER BY due_at, timer_id LIMIT %s"
    ).format(where)
    rows = conn.execute(query, [*params, limit]).fetchall()
    return [TimerRow(*row) for row in rows]


def timer_stats(conn: psycopg.Connection, now: datetime) -> TimerStats:
    """Pending (and overdue) from the partial index; fired and cancelled by a scan."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE due_at <= %s), min(due_at)"
        " FROM timers WHERE status = 'pending'",
        (now,),
    ).fetchone()
    done: dict[str, int] = dict(
        conn.execute(
            "SELECT status, count(*) FROM timers WHERE status <> 'pending' GROUP BY status"
        ).fetchall()
    )
    pending, overdue, next_due = row if row is not None else (0, 0, None)
    return TimerStats(
        pending=pending,
        overdue=overdue,
        next_due=next_due,
        fired=done.get("fired", 0),
        cancelled=done.get("cancelled", 0),
    )


def pending_by_rule_version(
    conn: psycopg.Connection, rule_ids: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Pending timers of the given rules, by (rule id, rule version)."""
    rows = conn.execute(
        "SELECT rule_id, rule_version, count(*) FROM timers"
        " WHERE status = 'pending' AND rule_id = ANY(%s) GROUP BY rule_id, rule_version",
        (list(rule_ids),),
    ).fetchall()
    return {(rule_id, version): count for rule_id, version, count in rows}
