"""The Postgres sink's batch write: all rows and the consumer offsets in one transaction.

Each table's rows are COPYed straight into the table inside a savepoint. When a row is
there already (a replayed action: rare), the savepoint is rolled back and that table's
rows take the slower path: COPY into a temporary staging table (one per table and
connection, emptied at commit), then `INSERT ... SELECT ... ON CONFLICT DO NOTHING` on
the action's key, so a replayed action adds nothing. No statement runs per row.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from confluent_kafka import Producer
from psycopg import sql

from runtime import kafka_clients
from runtime.db import copy_rows
from runtime.offsets import TopicPartition, store_offsets
from sinks.postgres.rows import (
    ACTIVITY_COLUMNS,
    COMPLETION_COLUMNS,
    DEAL_COLUMNS,
    EXECUTION_COLUMNS,
    LEAD_COLUMNS,
    OUTBOX_COLUMNS,
    Row,
    Rows,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Target:
    """One sink table: where its batch is staged and how it moves into the table."""

    attr: str
    """The `Rows` list holding this table's rows."""
    stage: str
    create_stage: sql.Composed
    copy_direct: sql.Composed
    copy: sql.Composed
    insert: sql.Composed


def _target(attr: str, table: str, columns: tuple[str, ...], conflict: str) -> _Target:
    stage_name = f"stage_{table}"
    stage = sql.Identifier(stage_name)
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return _Target(
        attr,
        stage_name,
        # Same column types as the table, no constraints or defaults (no sequence use).
        sql.SQL(
            "CREATE TEMPORARY TABLE {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA"
        ).format(stage, names, sql.Identifier(table)),
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table), names),
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, names),
        # A sequential scan of the fresh staging table keeps the batch's order, so ids
        # (and the outbox's relay order) follow the topic order.
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO NOTHING").format(
            sql.Identifier(table), names, names, stage, sql.Identifier(conflict)
        ),
    )


_TARGETS: tuple[_Target, ...] = (
    _target("leads", "leads", LEAD_COLUMNS, "action_id"),
    _target("deals", "deals", DEAL_COLUMNS, "action_id"),
    _target("activities", "activities", ACTIVITY_COLUMNS, "action_id"),
    _target("completions", "activity_completions", COMPLETION_COLUMNS, "action_id"),
    _target("executions", "executions", EXECUTION_COLUMNS, "execution_key"),
    _target("outbox", "outbox", OUTBOX_COLUMNS, "action_id"),
)

# Completions may arrive before or after their activities: after both inserts, any open
# activity of a stage entry that has a completion is completed. Order-independent.
_APPLY_COMPLETIONS = """
UPDATE activities a
   SET status = 'completed', completed_at = c.completed_at
  FROM activity_completions c
 WHERE a.item_key = c.item_key
   AND a.stage_entry_id = c.stage_entry_id
   AND a.complete_on_stage_exit
   AND a.status = 'open'
   AND a.item_key = ANY(%s)
"""

# Per connection whose staging tables exist (temporary tables live as long as the
# session): each staging table's column types, for binary COPY.
_staged: weakref.WeakKeyDictionary[psycopg.Connection, dict[str, list[str]]] = (
    weakref.WeakKeyDictionary()
)

_COLUMN_TYPES = """
SELECT a.attrelid::regclass::text, format_type(a.atttypid, NULL)
  FROM pg_attribute a
 WHERE a.attrelid = ANY(%s::regclass[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum
"""


def write_batch(
    conn: psycopg.Connection,
    rows: Rows,
    group: str,
    next_offsets: Mapping[TopicPartition, int],
) -> None:
    """Write one batch idempotently (ON CONFLICT on the action's key) with its offsets.

    Raises psycopg errors with nothing written: the caller may write the same batch again.
    """
    types = _staged.get(conn)
    with conn.transaction(), conn.cursor() as cur:
        if types is None:
            types = _create_staging(cur)
        for target in _TARGETS:
            batch: list[Row] = getattr(rows, target.attr)
            if not batch:
                continue
            try:
                with conn.transaction():  # a savepoint
                    copy_rows(cur, target.copy_direct, types[target.stage], batch)
            except psycopg.errors.UniqueViolation:
                copy_rows(cur, target.copy, types[target.stage], batch)
                cur.execute(target.insert)
        touched = {row[3] for row in rows.activities} | {row[1] for row in rows.completions}
        if touched:
            cur.execute(_APPLY_COMPLETIONS, (sorted(touched),))
        store_offsets(cur, group, next_offsets)
    _staged[conn] = types  # only now: a rolled-back CREATE leaves no table behind


def _create_staging(cur: psycopg.Cursor) -> dict[str, list[str]]:
    for target in _TARGETS:
        cur.execute(target.create_stage)
    cur.execute(_COLUMN_TYPES, ([target.stage for target in _TARGETS],))
    types: dict[str, list[str]] = {target.stage: [] for target in _TARGETS}
    for stage, type_name in cur.fetchall():
        types[stage].append(type_name)
    return types


def relay_outbox(conn: psycopg.Connection, producer: Producer, limit: int = 1000) -> int:
    """Produce pending announcements, confirmed, then mark them relayed; return how many.

    A crash after producing and before marking re-sends them: their event ids make the
    engine treat the second copy as a duplicate.
    """
    with conn.transaction():
        pending = conn.execute(
            "SELECT id, topic, key, value FROM outbox WHERE relayed_at IS NULL"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        ).fetchall()
        if not pending:
            return 0
        for _id, topic, key, value in pending:
            producer.produce(topic, key=bytes(key), value=bytes(value))
        kafka_clients.flush_or_raise(producer)
        conn.execute(
            "UPDATE outbox SET relayed_at = now() WHERE id = ANY(%s)", ([r[0] for r in pending],)
        )
    logger.info("relayed announcements count=%s", len(pending))
    return len(pending)
