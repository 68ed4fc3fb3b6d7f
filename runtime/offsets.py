"""Consumer offsets stored in Postgres, in the same transaction as the results they cover."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

TopicPartition = tuple[str, int]


# The guard keeps a stalled, late writer from moving an offset backwards.
_STORE_OFFSET = """
INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
VALUES (%s, %s, %s, %s)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
   SET next_offset = EXCLUDED.next_offset, updated_at = now()
 WHERE consumer_offsets.next_offset < EXCLUDED.next_offset
"""


def store_offsets(
    cur: psycopg.Cursor, group: str, next_offsets: Mapping[TopicPartition, int]
) -> None:
    """Record the next offset to read per partition; call inside the batch's transaction."""
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
