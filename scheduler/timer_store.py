"""The timers table: idempotent schedules, cancels that win in any order, due-order claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from runtime.db import copy_rows

# Namespace of the advisory locks that order rule-wide cancels against schedules of the
# same rule (a rule cancel is keyed by rule id, so it is read on another partition, maybe
# by another scheduler, at the same moment as the schedules it must cancel).
_RULE_LOCK_CLASS = 7_341_004

REASON_STAGE_EXIT = "stage_exit"
REASON_RULE_CANCELLED = "rule_cancelled"
REASON_RULE_CHANGED = "rule_changed"


@dataclass(frozen=True)
class Schedule:
    """A timer to store: one row of `timers`, as decoded from a SCHEDULE command."""

    timer_id: str
    item_key: str
    stage_entry_id: str | None
    rule_id: str
    rule_version: str
    event_id: str
    issued_at: datetime
    due_at: datetime
    action: bytes


@dataclass(frozen=True)
class StageEntryCancel:
    item_key: str
    stage_entry_id: str
    issued_at: datetime


@dataclass(frozen=True)
class RuleCancel:
    rule_id: str
    issued_at: datetime
    rule_version: str | None = None
    """Only the timers of this version (an edited rule's old one); None: the whole rule."""


@dataclass(frozen=True)
class TimerRef:
    """A timer that changed state, with what its execution record needs."""

    timer_id: str
    item_key: str
    rule_id: str
    rule_version: str
    event_id: str
    due_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class IngestResult:
    scheduled: int
    """New pending timers."""
    cancelled: tuple[TimerRef, ...]
    """Timers cancelled now: pending ones, and new schedules a tombstone already covered."""
    earliest_due: datetime | None
    """The earliest due time among the new pending timers (to wake the fire loop)."""


@dataclass(frozen=True)
class DueTimer:
    timer_id: str
    item_key: str
    rule_id: str
    rule_version: str
    event_id: str
    due_at: datetime
    action: bytes


_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS timer_staging (
    timer_id text, item_key text, stage_entry_id text, rule_id text, rule_version text,
    event_id text, issued_at timestamptz, due_at timestamptz, action bytea
) ON COMMIT DELETE ROWS
"""
# A timer row as COPY writes it (binary): columns and their types, in order.
COPY_COLUMNS = (
    "(timer_id, item_key, stage_entry_id, rule_id, rule_version, event_id, issued_at, due_at,"
    " action)"
)
_COPY_STAGING = f"COPY timer_staging {COPY_COLUMNS} FROM STDIN (FORMAT BINARY)"
COPY_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "bytea",
)

# A rule cancel holds its rules' locks exclusively, a batch of schedules shares them:
# whichever commits first, the other's statements see it. Locks are taken in hash
# order so that two batches never wait on each other in a cycle.
_LOCK_RULES = """
SELECT pg_advisory_xact_lock(%s, h)
  FROM (SELECT DISTINCT hashtext(r) AS h FROM unnest(%s::text[]) AS r ORDER BY h) AS locks
"""
_LOCK_RULES_SHARED = """
SELECT pg_advisory_xact_lock_shared(%s, h)
  FROM (SELECT DISTINCT hashtext(r) AS h FROM unnest(%s::text[]) AS r ORDER BY h) AS locks
"""

_TOMBSTONE_ENTRIES = """
INSERT INTO cancelled_stage_entries (item_key, stage_entry_id, issued_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[])
ON CONFLICT (item_key, stage_entry_id) DO NOTHING
"""
_TOMBSTONE_RULES = """
INSERT INTO cancelled_rules (rule_id, issued_at)
SELECT r, max(t) FROM unnest(%s::text[], %s::timestamptz[]) AS c(r, t) GROUP BY r
ON CONFLICT (rule_id) DO UPDATE
   SET issued_at = GREATEST(cancelled_rules.issued_at, EXCLUDED.issued_at), updated_at = now()
"""
_CANCEL_ENTRIES = """
UPDATE timers AS t SET status = 'cancelled', cancelled_at = %s, cancel_reason = 'stage_exit'
  FROM unnest(%s::text[], %s::text[]) AS c(item_key, stage_entry_id)
 WHERE t.status = 'pending' AND t.item_key = c.item_key AND t.stage_entry_id = c.stage_entry_id
RETURNING t.timer_id, t.item_key, t.rule_id, t.rule_version, t.event_id, t.due_at
"""
_CANCEL_RULES = """
UPDATE timers AS t SET status = 'cancelled', cancelled_at = %s, cancel_reason = 'rule_cancelled'
  FROM (SELECT r, max(i) AS issued_at
          FROM unnest(%s::text[], %s::timestamptz[]) AS c(r, i) GROUP BY r) AS c
 WHERE t.status = 'pending' AND t.rule_id = c.r AND t.issued_at < c.issued_at
RETURNING t.timer_id, t.item_key, t.rule_id, t.rule_version, t.event_id, t.due_at
"""
_TOMBSTONE_RULE_VERSIONS = """
INSERT INTO cancelled_rule_versions (rule_id, rule_version)
SELECT * FROM unnest(%s::text[], %s::text[])
ON CONFLICT (rule_id, rule_version) DO NOTHING
"""
_CANCEL_RULE_VERSIONS = """
UPDATE timers AS t SET status = 'cancelled', cancelled_at = %s, cancel_reason = 'rule_changed'
  FROM unnest(%s::text[], %s::text[]) AS c(r, v)
 WHERE t.status = 'pending' AND t.rule_id = c.r AND t.rule_version = c.v
RETURNING t.timer_id, t.item_key, t.rule_id, t.rule_version, t.event_id, t.due_at
"""
# A batch of schedules that no tombstone may cancel (the usual case) is COPYed straight
# into `timers` inside a savepoint. One that a tombstone may cancel, or that holds a timer
# already stored (a replayed schedule: rare), goes through staging, where each new
# schedule is checked against the tombstones (this batch's included) as it is inserted,
# so a cancel that was read first still wins.
_COPY_TIMERS = f"COPY timers {COPY_COLUMNS} FROM STDIN (FORMAT BINARY)"
_MAY_BE_CANCELLED = """
SELECT EXISTS (SELECT 1 FROM cancelled_stage_entries AS e
                 JOIN unnest(%s::text[], %s::text[]) AS s(item_key, stage_entry_id)
                   ON e.item_key = s.item_key AND e.stage_entry_id = s.stage_entry_id)
    OR EXISTS (SELECT 1 FROM cancelled_rules WHERE rule_id = ANY(%s) AND issued_at > %s)
    OR EXISTS (SELECT 1 FROM cancelled_rule_versions AS v
                 JOIN unnest(%s::text[], %s::text[]) AS s(rule_id, rule_version)
                   ON v.rule_id = s.rule_id AND v.rule_version = s.rule_version)
"""
_INSERT_FROM_STAGING = """
INSERT INTO timers AS t (timer_id, item_key, stage_entry_id, rule_id, rule_version, event_id,
                         issued_at, due_at, action, status, cancelled_at, cancel_reason)
SELECT s.timer_id, s.item_key, s.stage_entry_id, s.rule_id, s.rule_version, s.event_id,
       s.issued_at, s.due_at, s.action,
       CASE WHEN x.reason IS NULL THEN 'pending' ELSE 'cancelled' END,
       CASE WHEN x.reason IS NULL THEN NULL ELSE %s::timestamptz END,
       x.reason
  FROM timer_staging AS s
  LEFT JOIN LATERAL (
        SELECT 'stage_exit' AS reason FROM cancelled_stage_entries AS e
         WHERE e.item_key = s.item_key AND e.stage_entry_id = s.stage_entry_id
        UNION ALL
        SELECT 'rule_cancelled' FROM cancelled_rules AS r
         WHERE r.rule_id = s.rule_id AND s.issued_at < r.issued_at
        UNION ALL
        SELECT 'rule_changed' FROM cancelled_rule_versions AS v
         WHERE v.rule_id = s.rule_id AND v.rule_version = s.rule_version
        LIMIT 1) AS x ON true
ON CONFLICT (timer_id) DO NOTHING
RETURNING t.timer_id, t.item_key, t.rule_id, t.rule_version, t.event_id, t.due_at, t.status,
          t.cancel_reason
"""


def ingest(
    cur: psycopg.Cursor,
    schedules: Sequence[Schedule],
    entry_cancels: Sequence[StageEntryCancel],
    rule_cancels: Sequence[RuleCancel],
    now: datetime,
) -> IngestResult:
    """Apply one batch of timer commands; call inside the batch's transaction."""
    rule_ids = sorted({c.rule_id for c in rule_cancels})
    if rule_ids:
        cur.execute(_LOCK_RULES, (_RULE_LOCK_CLASS, rule_ids))
    scheduled_rules = sorted({s.rule_id for s in schedules} - set(rule_ids))
    if scheduled_rules:
        cur.execute(_LOCK_RULES_SHARED, (_RULE_LOCK_CLASS, scheduled_rules))
    cancelled: list[TimerRef] = []
    if entry_cancels:
        cur.execute(
            _TOMBSTONE_ENTRIES,
            (
                [c.item_key for c in entry_cancels],
                [c.stage_entry_id for c in entry_cancels],
                [c.issued_at for c in entry_cancels],
            ),
        )
        cur.execute(
            _CANCEL_ENTRIES,
            (
                now,
                [c.item_key for c in entry_cancels],
                [c.stage_entry_id for c in entry_cancels],
            ),
        )
        cancelled += [_ref(row, REASON_STAGE_EXIT) for row in cur.fetchall()]
    whole = [c for c in rule_cancels if c.rule_version is None]
    if whole:
        ids, issued = [c.rule_id for c in whole], [c.issued_at for c in whole]
        cur.execute(_TOMBSTONE_RULES, (ids, issued))
        cur.execute(_CANCEL_RULES, (now, ids, issued))
        cancelled += [_ref(row, REASON_RULE_CANCELLED) for row in cur.fetchall()]
    versions = [c for c in rule_cancels if c.rule_version is not None]
    if versions:
        ids, numbers = [c.rule_id for c in versions], [c.rule_version for c in versions]
        cur.execute(_TOMBSTONE_RULE_VERSIONS, (ids, numbers))
        cur.execute(_CANCEL_RULE_VERSIONS, (now, ids, numbers))
        cancelled += [_ref(row, REASON_RULE_CHANGED) for row in cur.fetchall()]
    scheduled, earliest = 0, None
    if schedules and not _may_be_cancelled(cur, schedules):
        try:
            with cur.connection.transaction():  # a savepoint
                _copy_rows(cur, _COPY_TIMERS, schedules)
            return IngestResult(len(schedules), tuple(cancelled), min(s.due_at for s in schedules))
        except psycopg.errors.UniqueViolation:
            pass  # a replayed schedule (rare): the staging path skips what is there
    if schedules:
        cur.execute(_STAGING)
        _copy_rows(cur, _COPY_STAGING, schedules)
        cur.execute(_INSERT_FROM_STAGING, (now,))
        for row in cur.fetchall():
            ref = _ref(row[:6], row[7])
            if row[6] == "pending":
                scheduled += 1
                earliest = ref.due_at if earliest is None else min(earliest, ref.due_at)
            else:
                cancelled.append(ref)
    return IngestResult(scheduled, tuple(cancelled), earliest)


def _may_be_cancelled(cur: psycopg.Cursor, schedules: Sequence[Schedule]) -> bool:
    """Whether a tombstone (this batch's included) may cancel one of `schedules`: checked
    per stage entry and per rule version, per rule against the batch's oldest schedule."""
    versions = sorted({(s.rule_id, s.rule_version) for s in schedules})
    cur.execute(
        _MAY_BE_CANCELLED,
        (
            [s.item_key for s in schedules],
            [s.stage_entry_id for s in schedules],
            sorted({s.rule_id for s in schedules}),
            min(s.issued_at for s in schedules),
            [rule_id for rule_id, _version in versions],
            [version for _rule_id, version in versions],
        ),
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _copy_rows(cur: psycopg.Cursor, statement: str, schedules: Sequence[Schedule]) -> None:
    rows = (
        (
            s.timer_id,
            s.item_key,
            s.stage_entry_id,
            s.rule_id,
            s.rule_version,
            s.event_id,
            s.issued_at,
            s.due_at,
            s.action,
        )
        for s in schedules
    )
    copy_rows(cur, statement, COPY_TYPES, rows)


def _ref(row: Sequence[Any], reason: str | None) -> TimerRef:
    timer_id, item_key, rule_id, rule_version, event_id, due_at = row
    return TimerRef(timer_id, item_key, rule_id, rule_version, event_id, due_at, reason)


# Claim and mark in one statement: the due rows are locked (skipping those another loop
# holds) and marked fired in the caller's transaction, which commits only after their
# records are confirmed; a crash or a refused delivery rolls the mark back with the claim.
# The locked rows are updated by their ctid (a TID scan): a join on timer_id made the
# planner hash the whole table for each batch.
_CLAIM_AND_MARK = """
WITH due AS (
    SELECT ctid
      FROM timers
     WHERE status = 'pending' AND due_at <= %s
     ORDER BY due_at
     LIMIT %s
       FOR UPDATE SKIP LOCKED
)
UPDATE timers AS t SET status = 'fired', fired_at = %s
 WHERE t.ctid = ANY(ARRAY(SELECT ctid FROM due))
RETURNING t.timer_id, t.item_key, t.rule_id, t.rule_version, t.event_id, t.due_at, t.action
"""


def claim_and_mark_due(cur: psycopg.Cursor, now: datetime, limit: int) -> list[DueTimer]:
    """Lock up to `limit` due pending timers, oldest first, skipping those others hold,
    and mark them fired at `now` (visible to others only once the transaction commits).
    Returned in due order."""
    cur.execute(_CLAIM_AND_MARK, (now, limit, now))
    due = [DueTimer(*row) for row in cur.fetchall()]
    due.sort(key=_due_order)
    return due


def _due_order(timer: DueTimer) -> tuple[datetime, str]:
    return timer.due_at, timer.timer_id


def next_due(conn: psycopg.Connection) -> datetime | None:
    """The due time of the earliest pending timer (an index lookup)."""
    row = conn.execute("SELECT min(due_at) FROM timers WHERE status = 'pending'").fetchone()
    return None if row is None else row[0]


def pending_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM timers WHERE status = 'pending'").fetchone()
    return 0 if row is None else int(row[0])
