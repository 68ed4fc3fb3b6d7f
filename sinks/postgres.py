"""The Postgres sink's batch write: all rows and the consumer offsets in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import psycopg
from confluent_kafka import Producer
from psycopg import sql

from crm_automation import kafka_clients
from crm_automation.offsets import TopicPartition, store_offsets
from sinks.postgres_rows import (
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


def _insert(table: str, columns: tuple[str, ...], conflict: str) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        sql.Identifier(conflict),
    )


_INSERTS: tuple[tuple[str, sql.Composed], ...] = (
    ("leads", _insert("leads", LEAD_COLUMNS, "action_id")),
    ("deals", _insert("deals", DEAL_COLUMNS, "action_id")),
    ("activities", _insert("activities", ACTIVITY_COLUMNS, "action_id")),
    ("completions", _insert("activity_completions", COMPLETION_COLUMNS, "action_id")),
    ("executions", _insert("executions", EXECUTION_COLUMNS, "execution_key")),
    ("outbox", _insert("outbox", OUTBOX_COLUMNS, "action_id")),
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


def write_batch(
    conn: psycopg.Connection,
    rows: Rows,
    group: str,
    next_offsets: Mapping[TopicPartition, int],
) -> None:
    """Write one batch idempotently (ON CONFLICT on the action's key) with its offsets."""
    with conn.transaction(), conn.cursor() as cur:
        for attr, statement in _INSERTS:
            batch: list[Row] = getattr(rows, attr)
            if batch:
                cur.executemany(statement, batch)
        touched = {row[3] for row in rows.activities} | {row[1] for row in rows.completions}
        if touched:
            cur.execute(_APPLY_COMPLETIONS, (sorted(touched),))
        store_offsets(cur, group, next_offsets)


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
