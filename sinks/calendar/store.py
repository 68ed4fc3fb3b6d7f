"""The calendar sink's log in Postgres: events written per stage entry, completions seen."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg

Entry = tuple[str, str]
"""(item_key, stage_entry_id): one stay of an item in a stage."""


class StoreUnavailable(Exception):
    """Postgres is unreachable or the connection broke: retry later."""


@dataclass(frozen=True)
class EventRecord:
    href: str
    action_id: str
    item_key: str
    stage_entry_id: str
    stage_id: str
    calendar: str  # "user" | "room"
    principal: str
    complete_on_stage_exit: bool
    completed_at: datetime | None = None


@dataclass(frozen=True)
class CompletionRecord:
    action_id: str
    item_key: str
    stage_entry_id: str
    stage_id: str
    completed_at: datetime


class EventLog(Protocol):
    """Where the sink remembers its events and completions; every write is idempotent."""

    def record_completions(self, completions: Sequence[CompletionRecord]) -> None: ...

    def completions_for(self, entries: Collection[Entry]) -> dict[Entry, datetime]:
        """The earliest completion time of each of `entries` that was left."""
        ...

    def open_events(self, entries: Collection[Entry]) -> list[EventRecord]:
        """Events of `entries` to be completed on stage exit and not completed yet."""
        ...

    def record_events(self, events: Sequence[EventRecord]) -> None: ...

    def mark_completed(self, completed: Sequence[tuple[str, datetime]]) -> None:
        """Mark events (by href) completed at the given time."""
        ...

    def room_claim(self, room: str) -> AbstractContextManager[None]:
        """Hold `room` exclusively, across processes, while checking and booking it.

        Raises StoreUnavailable if the claim cannot be taken; released on exit either way.
        """
        ...

    def close(self) -> None: ...


# Waits until no other transaction holds the room; the key space is shared with other
# advisory locks, hence the prefix. Released at the end of the claim's transaction.
_ROOM_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('crm-automation room ' || %s, 0))"

_EVENT_COLUMNS = (
    "href, action_id, item_key, stage_entry_id, stage_id, calendar, principal, "
    "complete_on_stage_exit, completed_at"
)


class PostgresEventLog:
    """`EventLog` on the `calendar_events` and `calendar_completions` tables (migration 3).

    Connects lazily and reconnects after a failure; every call is one transaction. Room
    claims are transaction-scoped advisory locks, each on a connection of the calling
    thread (a claim is held over HTTP calls, so it cannot share the log's connection).
    """

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection | None = None
        self._claimers = threading.local()
        self._claim_conns: list[psycopg.Connection] = []
        self._claim_conns_guard = threading.Lock()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        with self._claim_conns_guard:
            for conn in self._claim_conns:
                conn.close()
            self._claim_conns.clear()

    @contextmanager
    def room_claim(self, room: str) -> Iterator[None]:
        conn = self._claim_connection()
        try:
            with conn.transaction():
                conn.execute(_ROOM_LOCK, (room,))
                yield
        except psycopg.OperationalError as exc:
            conn.close()
            raise StoreUnavailable(str(exc)) from exc

    def _claim_connection(self) -> psycopg.Connection:
        conn: psycopg.Connection | None = getattr(self._claimers, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(self._url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
            self._claimers.conn = conn
            with self._claim_conns_guard:
                self._claim_conns = [c for c in self._claim_conns if not c.closed] + [conn]
        return conn

    def record_completions(self, completions: Sequence[CompletionRecord]) -> None:
        if not completions:
            return
        self._executemany(
            "INSERT INTO calendar_completions"
            " (action_id, item_key, stage_entry_id, stage_id, completed_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (action_id) DO NOTHING",
            [
                (c.action_id, c.item_key, c.stage_entry_id, c.stage_id, c.completed_at)
                for c in completions
            ],
        )

    def completions_for(self, entries: Collection[Entry]) -> dict[Entry, datetime]:
        if not entries:
            return {}
        rows = self._query(
            "SELECT c.item_key, c.stage_entry_id, min(c.completed_at)"
            "  FROM calendar_completions c"
            "  JOIN unnest(%s::text[], %s::text[]) AS e(item_key, stage_entry_id)"
            "    ON c.item_key = e.item_key AND c.stage_entry_id = e.stage_entry_id"
            " GROUP BY c.item_key, c.stage_entry_id",
            _columns(entries),
        )
        return {(row[0], row[1]): row[2] for row in rows}

    def open_events(self, entries: Collection[Entry]) -> list[EventRecord]:
        if not entries:
            return []
        rows = self._query(
            "SELECT c.href, c.action_id, c.item_key, c.stage_entry_id, c.stage_id, c.calendar,"
            "       c.principal, c.complete_on_stage_exit, c.completed_at"
            "  FROM calendar_events c"
            "  JOIN unnest(%s::text[], %s::text[]) AS e(item_key, stage_entry_id)"
            "    ON c.item_key = e.item_key AND c.stage_entry_id = e.stage_entry_id"
            " WHERE c.completed_at IS NULL AND c.complete_on_stage_exit"
            " ORDER BY c.href",
            _columns(entries),
        )
        return [EventRecord(*row) for row in rows]

    def record_events(self, events: Sequence[EventRecord]) -> None:
        if not events:
            return
        # A replay must not reopen a completed event: keep the earliest completion.
        self._executemany(
            f"INSERT INTO calendar_events ({_EVENT_COLUMNS})"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (href) DO UPDATE SET completed_at ="
            "   coalesce(calendar_events.completed_at, excluded.completed_at)",
            [
                (
                    e.href,
                    e.action_id,
                    e.item_key,
                    e.stage_entry_id,
                    e.stage_id,
                    e.calendar,
                    e.principal,
                    e.complete_on_stage_exit,
                    e.completed_at,
                )
                for e in events
            ],
        )

    def mark_completed(self, completed: Sequence[tuple[str, datetime]]) -> None:
        if not completed:
            return
        self._executemany(
            "UPDATE calendar_events SET completed_at = %s WHERE href = %s AND completed_at IS NULL",
            [(at, href) for href, at in completed],
        )

    def _query(self, sql: str, params: tuple[list[str], list[str]]) -> list[tuple[Any, ...]]:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(sql.encode(), params)
                return list(cur.fetchall())
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(str(exc)) from exc

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql.encode(), rows)
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(str(exc)) from exc

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True)
        return self._conn


def _columns(entries: Collection[Entry]) -> tuple[list[str], list[str]]:
    ordered = sorted(set(entries))
    return [e[0] for e in ordered], [e[1] for e in ordered]
