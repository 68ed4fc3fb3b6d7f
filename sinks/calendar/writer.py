"""One batch of actions into CalDAV: events, room bookings, completions; all idempotent.

Per item, actions are applied in topic order; different items run concurrently. Room
bookings (check for an overlapping event, then PUT) are serialised per room: by a lock
within the process, and across processes by the event log's room claim (a Postgres
advisory lock held from the check to the PUT). A batch that fails with an outage can be
written again as a whole: every step is idempotent (PUT If-None-Match, completion only if
not completed, upserts in the log).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from automation_core.model import (
    Action,
    CompleteActivities,
    Execution,
    ExecutionStatus,
    PlanActivity,
)
from runtime.clock import Clock
from sinks.calendar import events as ev
from sinks.calendar.caldav_client import (
    ROOM_COLLECTION,
    CalDAVClient,
    CalDAVRejected,
    CalDAVUnavailable,
    CalendarRef,
)
from sinks.calendar.store import CompletionRecord, Entry, EventLog, EventRecord

logger = logging.getLogger(__name__)

ROOM_BUSY = "room_busy"
_MAX_UPDATE_ATTEMPTS = 5


@dataclass
class BatchOutcome:
    """What a batch did: executions to publish, actions refused for good, write counts."""

    executions: list[Execution] = field(default_factory=list)
    rejected: dict[int, CalDAVRejected] = field(default_factory=dict)
    """Index in the batch → why the server refused that action (it goes to the DLQ)."""
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, outcome) → count; kind: event, room, completion, skipped."""


@dataclass
class _LaneResult:
    executions: list[Execution] = field(default_factory=list)
    rejected: dict[int, CalDAVRejected] = field(default_factory=dict)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    records: list[EventRecord] = field(default_factory=list)
    completed: list[tuple[str, datetime]] = field(default_factory=list)


class CalendarWriter:
    def __init__(
        self,
        calendars: CalDAVClient,
        log: EventLog,
        clock: Clock,
        *,
        addressing: ev.Addressing | None = None,
        concurrency: int = 8,
    ) -> None:
        self._calendars = calendars
        self._log = log
        self._clock = clock
        self._addressing = addressing or ev.Addressing()
        self._pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="calendar")
        self._room_locks: dict[CalendarRef, threading.Lock] = defaultdict(threading.Lock)
        self._room_locks_guard = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._calendars.close()
        self._log.close()

    def write(self, actions: Sequence[Action]) -> BatchOutcome:
        """Apply the calendar part of `actions`; raises CalDAVUnavailable/StoreUnavailable."""
        outcome = BatchOutcome()
        lanes: dict[str, list[int]] = defaultdict(list)
        plan_entries: set[Entry] = set()
        completions: list[CompletionRecord] = []
        for index, action in enumerate(actions):
            p = action.payload
            if isinstance(p, PlanActivity) and p.add_to_calendar:
                plan_entries.add((action.item_key, action.stage_entry_id))
            elif isinstance(p, CompleteActivities):
                completions.append(
                    CompletionRecord(
                        action.action_id,
                        action.item_key,
                        action.stage_entry_id,
                        p.stage_id,
                        p.completed_at,
                    )
                )
            else:
                outcome.writes["skipped", "not_calendar"] += 1
                continue
            lanes[action.item_key].append(index)

        # Completions first: an activity of an entry already left is created completed,
        # whatever order its action and the completion arrived in.
        self._log.record_completions(completions)
        left = self._log.completions_for(plan_entries)
        open_events: dict[Entry, list[EventRecord]] = defaultdict(list)
        for record in self._log.open_events({(c.item_key, c.stage_entry_id) for c in completions}):
            open_events[(record.item_key, record.stage_entry_id)].append(record)

        futures = [
            self._pool.submit(
                self._write_lane, [(i, actions[i]) for i in indexes], left, open_events
            )
            for indexes in lanes.values()
        ]
        results: list[_LaneResult] = []
        unavailable: Exception | None = None
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # let every lane finish, then raise the first failure
                unavailable = unavailable or exc
        if unavailable is not None:
            raise unavailable

        records = [r for lane in results for r in lane.records]
        completed = [c for lane in results for c in lane.completed]
        self._log.record_events(records)
        self._log.mark_completed(completed)
        for lane in results:
            outcome.executions.extend(lane.executions)
            outcome.rejected.update(lane.rejected)
            outcome.writes.update(lane.writes)
        return outcome

    def _write_lane(
        self,
        work: list[tuple[int, Action]],
        left: dict[Entry, datetime],
        open_events: dict[Entry, list[EventRecord]],
    ) -> _LaneResult:
        result = _LaneResult()
        for index, action in work:
            try:
                if isinstance(action.payload, PlanActivity):
                    self._plan(action, action.payload, left, result)
                else:
                    self._complete_entry(action, open_events, result)
            except CalDAVRejected as exc:
                result.rejected[index] = exc
                result.writes["event", "rejected"] += 1
                logger.warning(
                    "calendar write refused action_id=%s reason=%s status=%s",
                    action.action_id,
                    exc.reason,
                    exc.status,
                )
        return result

    def _plan(
        self, action: Action, plan: PlanActivity, left: dict[Entry, datetime], result: _LaneResult
    ) -> None:
        person = CalendarRef.of_user(plan.responsible_id)
        room = CalendarRef.of_room(plan.location_id) if plan.location_id else None
        completed_at = (
            left.get((action.item_key, action.stage_entry_id))
            if plan.complete_on_stage_exit
            else None
        )
        ics = ev.to_ical(ev.build_calendar(action, plan, self._addressing, completed_at))
        name = ev.resource_name(action.action_id)

        created = self._ensure(person, name, ics, completed_at)
        result.writes["event", "created" if created else "exists"] += 1
        result.records.append(self._record(action, plan, person, "user", name, completed_at))
        # "Nutzer einladen": the same event (same UID and name) in each invitee's calendar,
        # recorded like the person's, so completing the activity completes all of them.
        for invitee in dict.fromkeys(plan.invitee_ids):
            if invitee == plan.responsible_id:
                continue
            calendar = CalendarRef.of_user(invitee)
            created = self._ensure(calendar, name, ics, completed_at)
            result.writes["invitee", "created" if created else "exists"] += 1
            result.records.append(self._record(action, plan, calendar, "user", name, completed_at))
        if room is None:
            return
        start, end = ev.event_window(plan)
        uid = ev.event_uid(action.action_id)
        with self._room_lock(room), self._log.room_claim(f"{room.principal}/{room.collection}"):
            # A zero-length activity still holds its minute.
            until = max(end, start + timedelta(seconds=1))
            stored = self._calendars.events_between(room, start, until)
            others = {u for event in stored for u in ev.busy_uids(event.ics)} - {uid}
            if others:
                result.writes["room", "clash"] += 1
                result.executions.append(self._room_busy(action))
                logger.info(
                    "room busy action_id=%s rule_id=%s clashes=%d",
                    action.action_id,
                    action.rule_id,
                    len(others),
                )
                return
            created = self._ensure(room, name, ics, completed_at)
        result.writes["room", "created" if created else "exists"] += 1
        result.records.append(self._record(action, plan, room, "room", name, completed_at))

    def _complete_entry(
        self, action: Action, open_events: dict[Entry, list[EventRecord]], result: _LaneResult
    ) -> None:
        payload = action.payload
        assert isinstance(payload, CompleteActivities)  # noqa: S101 (lanes hold only these two)
        for record in open_events.get((action.item_key, action.stage_entry_id), []):
            collection = ROOM_COLLECTION if record.calendar == "room" else "calendar"
            calendar = CalendarRef(record.principal, collection)
            changed = self._complete_href(calendar, record.href, payload.completed_at)
            result.writes["completion", "completed" if changed else "unchanged"] += 1
            result.completed.append((record.href, payload.completed_at))

    def _ensure(
        self, calendar: CalendarRef, name: str, ics: bytes, completed_at: datetime | None
    ) -> bool:
        """Create the event; if it existed and should be completed, complete it."""
        created = self._calendars.create(calendar, name, ics)
        if not created and completed_at is not None:
            self._complete_href(calendar, self._calendars.href(calendar, name), completed_at)
        return created

    def _complete_href(self, calendar: CalendarRef, href: str, completed_at: datetime) -> bool:
        for _ in range(_MAX_UPDATE_ATTEMPTS):
            stored = self._calendars.get(calendar, href)
            if stored is None:
                return False  # deleted by a person: nothing to complete
            updated = ev.complete(stored.ics, completed_at)
            if updated is None:
                return False
            if self._calendars.replace(calendar, href, updated, stored.etag):
                return True
        raise CalDAVUnavailable(f"event kept changing, {_MAX_UPDATE_ATTEMPTS} completion tries")

    def _record(
        self,
        action: Action,
        plan: PlanActivity,
        calendar: CalendarRef,
        kind: str,
        name: str,
        completed_at: datetime | None,
    ) -> EventRecord:
        return EventRecord(
            href=self._calendars.href(calendar, name),
            action_id=action.action_id,
            item_key=action.item_key,
            stage_entry_id=action.stage_entry_id,
            stage_id=plan.stage_id,
            calendar=kind,
            principal=calendar.principal,
            complete_on_stage_exit=plan.complete_on_stage_exit,
            completed_at=completed_at,
        )

    def _room_busy(self, action: Action) -> Execution:
        return Execution(
            rule_id=action.rule_id,
            item_key=action.item_key,
            event_id=action.event_id,
            status=ExecutionStatus.FAILED,
            recorded_at=self._clock.now(),
            action_id=action.action_id,
            rule_version=action.rule_version,
            reason=ROOM_BUSY,
        )

    def _room_lock(self, room: CalendarRef) -> threading.Lock:
        with self._room_locks_guard:
            return self._room_locks[room]
