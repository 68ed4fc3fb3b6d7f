"""The Postgres sink's batch write: all rows and the consumer offsets in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import psycopg
from psycopg import sql

from sinks.postgres_rows import (
    ACTIVITY_COLUMNS,
    COMPLETION_COLUMNS,
    DEAL_COLUMNS,
    EXECUTION_COLUMNS,
    LEAD_COLUMNS,
    Row,
    Rows,
)

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


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

# The guard keeps a stalled, late writer from moving an offset backwards.
_STORE_OFFSET = """
INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
VALUES (%s, %s, %s, %s)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
   SET next_offset = EXCLUDED.next_offset, updated_at = now()
 WHERE consumer_offsets.next_offset < EXCLUDED.next_offset
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
        if next_offsets:
            cur.executemany(
                _STORE_OFFSET,
                [(group, topic, part, off) for (topic, part), off in next_offsets.items()],
            )


def stored_offsets(conn: psycopg.Connection, group: str) -> dict[TopicPartition, int]:
    """The next offset to read per partition, as last committed with the results."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = %s",
            (group,),
        ).fetchall()
    return {(topic, part): off for topic, part, off in rows}
