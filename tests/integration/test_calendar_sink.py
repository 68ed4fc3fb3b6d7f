"""The calendar sink on real Kafka, Postgres and Radicale: events, replays, rooms, outages."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from icalendar import Calendar
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from automation_core.model import (
    Action,
    ActionMode,
    Client,
    CompleteActivities,
    CreateLead,
    Execution,
    ExecutionStatus,
    PlanActivity,
)
from runtime import codec, db, kafka_clients, topics
from runtime.clock import SystemClock
from runtime.dlq import HEADER_REASON
from runtime.settings import Settings
from sinks.calendar import events as ev
from sinks.calendar import process as calendar_process
from sinks.calendar.caldav_client import CalDAVClient, CalendarRef, StoredEvent
from sinks.calendar.store import PostgresEventLog
from sinks.calendar.writer import ROOM_BUSY, BatchOutcome, CalendarWriter
from sinks.metrics import SinkMetrics
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


# --- builders ---------------------------------------------------------------------------


def plan_action(
    user: str,
    *,
    item: str = "DEAL:4711",
    entry: str = "evt-1",
    start: datetime = T0,
    minutes: int = 30,
    room: str | None = None,
    complete_on_exit: bool = False,
    **changes: Any,
) -> Action:
    action_id = uuid.uuid4().hex
    payload = PlanActivity(
        activity_id=f"activity-{action_id}",
        subject="Call the client",
        description="Discuss the contract",
        deadline=start,
        duration_minutes=minutes,
        responsible_id=user,
        stage_id="APPROVAL",
        color="yellow",
        add_to_calendar=True,
        clients=(Client("p-1", "contact", "Anna Müller", "anna@example.com"),),
        invitee_ids=(),
        address=None,
        location_id=room,
        link="https://meet.example.com/4711",
        files=(),
        complete_on_stage_exit=complete_on_exit,
    )
    for name, value in changes.items():
        payload = _replace(payload, name, value)
    return Action(
        action_id=action_id,
        rule_id="call-client",
        rule_version="v1",
        item_key=item,
        event_id=entry,
        stage_entry_id=entry,
        occurred_at=T0 - timedelta(days=1),
        mode=ActionMode.IMMEDIATE,
        payload=payload,
    )


def _replace(payload: PlanActivity, name: str, value: Any) -> PlanActivity:
    return dataclasses.replace(payload, **{name: value})


def completion(item: str, entry: str, at: datetime = T0 + timedelta(hours=2)) -> Action:
    return Action(
        action_id=uuid.uuid4().hex,
        rule_id="",
        rule_version="",
        item_key=item,
        event_id="evt-leave",
        stage_entry_id=entry,
        occurred_at=at,
        mode=ActionMode.IMMEDIATE,
        payload=CompleteActivities(stage_id="APPROVAL", completed_at=at),
    )


def lead_action(item: str) -> Action:
    return Action(
        action_id=uuid.uuid4().hex,
        rule_id="renewal-lead",
        rule_version="v1",
        item_key=item,
        event_id="evt-9",
        stage_entry_id="evt-9",
        occurred_at=T0,
        mode=ActionMode.IMMEDIATE,
        payload=CreateLead(
            lead_id="lead-1", title="Renew", responsible_id="u-7", company=None, contacts=()
        ),
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- CalDAV reading (plain HTTP, independent of the sink's client) ---------------------


class CalendarReader:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def event(self, owner: str, collection: str, action_id: str) -> Any | None:
        url = f"{self.base}/{owner}/{collection}/{action_id}.ics"
        response = httpx.get(url, auth=(owner, ""), timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        (vevent,) = Calendar.from_ical(response.content).walk("VEVENT")
        return vevent

    def names(self, owner: str, collection: str) -> list[str]:
        url = f"{self.base}/{owner}/{collection}/"
        response = httpx.request(
            "PROPFIND", url, auth=(owner, ""), headers={"Depth": "1"}, timeout=10
        )
        if response.status_code == 404:
            return []
        assert response.status_code == 207, response.text
        root = ElementTree.fromstring(response.content)  # noqa: S314 - our own test server
        hrefs = [h.text or "" for h in root.iter("{DAV:}href")]
        return sorted(h.rsplit("/", 1)[-1] for h in hrefs if h.endswith(".ics"))


# --- fixtures ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Radicale:
    """A Radicale of this test alone, so stopping it leaves the session's server up."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config = folder / "config"
        self.config.write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n[auth]\ntype = none\n"
            f"[rights]\ntype = authenticated\n[storage]\nfilesystem_folder = {folder / 'data'}\n"
            "[web]\ntype = none\n[logging]\nlevel = warning\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(self.answers, 30, what="Radicale to answer")
        except BaseException:
            self.stop()
            raise

    def answers(self) -> bool:
        try:
            return httpx.request("OPTIONS", self.url, timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_radicale(tmp_path: Path) -> Iterator[Radicale]:
    server = Radicale(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(stack: Any) -> Iterator[str]:
    """A fresh, migrated database per test on the stack's Postgres server."""
    name = f"cal_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(stack.database_url, dbname=name)
    db.migrate(url)
    yield url
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Harness:
    """Topics of this test (own prefix), a producer, and sink threads."""

    def __init__(self, stack: Any, database_url: str, caldav_url: str) -> None:
        self.settings: Settings = stack.settings.model_copy(
            update={
                "database_url": SecretStr(database_url),
                "caldav_url": caldav_url,
                "topic_prefix": f"{uuid.uuid4().hex[:8]}.",
                "partitions": 3,
                "batch_size": 50,
                "caldav_timeout_seconds": 2.0,
            }
        )
        self.database_url = database_url
        self.calendars = CalendarReader(caldav_url)
        topics.create_topics(AdminClient(kafka_clients.admin_config(self.settings)), self.settings)
        self.producer = Producer(kafka_clients.producer_config(self.settings))
        self._sinks: list[tuple[threading.Thread, threading.Event]] = []
        self.registry = CollectorRegistry()
        self.metrics = SinkMetrics.create(self.registry)

    def send(self, *actions: Action) -> None:
        for action in actions:
            self.producer.produce(
                self.settings.topic(topics.ACTIONS),
                key=action.item_key.encode(),
                value=codec.encode(action),
            )
        kafka_clients.flush_or_raise(self.producer)

    def send_raw(self, key: bytes, value: bytes) -> None:
        self.producer.produce(self.settings.topic(topics.ACTIONS), key=key, value=value)
        kafka_clients.flush_or_raise(self.producer)

    def start_sink(self, group: str = calendar_process.GROUP) -> threading.Event:
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                calendar_process.run(self.settings, self.metrics, stop, group=group)
            except BaseException as exc:  # surfaced by stop_sinks
                errors.append(exc)
                raise

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._sinks.append((thread, stop))
        self._errors = errors
        return stop

    def stop_sinks(self) -> None:
        for thread, stop in self._sinks:
            stop.set()
            thread.join(30)
            assert not thread.is_alive()
        self._sinks.clear()

    def read(self, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
        consumer = Consumer(kafka_clients.consumer_config(self.settings, uuid.uuid4().hex))
        consumer.subscribe([self.settings.topic(topic)])
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    found.append(message)
            # A little longer: more than `count` would be a duplicate.
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    found.append(message)
        finally:
            consumer.close()
        return found

    def event_rows(self) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM calendar_events").fetchone()
            return int(row[0]) if row else 0

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def close(self) -> None:
        self.stop_sinks()
        self.producer.flush(10)


@pytest.fixture
def harness(stack: Any, database_url: str) -> Iterator[Harness]:
    h = Harness(stack, database_url, stack.caldav_url)
    yield h
    h.close()


# --- tests ------------------------------------------------------------------------------


def test_a_planned_activity_lands_in_the_responsible_persons_calendar_with_every_field(
    harness: Harness,
) -> None:
    user = unique("u")
    action = plan_action(
        user,
        address="Hauptstr. 1, Berlin",
        files=("https://files.example.com/offer.pdf",),
        invitee_ids=("u-12",),
    )
    harness.send(action)
    harness.start_sink()

    wait_for(
        lambda: harness.calendars.event(user, "calendar", action.action_id) is not None,
        what="the event",
    )
    event = harness.calendars.event(user, "calendar", action.action_id)
    assert str(event["UID"]) == f"{action.action_id}@crm-automation"
    assert str(event["SUMMARY"]) == "Call the client"
    assert str(event["DESCRIPTION"]) == "Discuss the contract"
    assert event["DTSTART"].dt == T0
    assert event["DTEND"].dt == T0 + timedelta(minutes=30)
    assert str(event["LOCATION"]) == "Hauptstr. 1, Berlin"
    assert str(event["URL"]) == "https://meet.example.com/4711"
    assert str(event["COLOR"]) == "yellow"
    assert str(event["ATTACH"]) == "https://files.example.com/offer.pdf"
    attendees = {str(a) for a in event["ATTENDEE"]}
    assert attendees == {"mailto:u-12@users.invalid", "mailto:anna@example.com"}
    assert str(event[ev.X_ITEM_KEY]) == "DEAL:4711"
    wait_for(
        lambda: (
            harness.metric(
                "crm_automation_sink_writes_total", sink="calendar", kind="event", outcome="created"
            )
            == 1
        ),
        what="metrics",
    )


def test_invitees_get_the_event_in_their_own_calendars_once_and_completed_with_it(
    harness: Harness,
) -> None:
    user, first, second = unique("u"), unique("guest"), unique("guest")
    action = plan_action(
        user, entry="e-9", invitee_ids=(first, second, user), complete_on_exit=True
    )
    harness.send(action, action)  # a redelivery too
    harness.start_sink()
    calendars = (user, first, second)
    wait_for(
        lambda: all(harness.calendars.event(p, "calendar", action.action_id) for p in calendars),
        what="the event in the person's and both invitees' calendars",
    )
    uids = {str(harness.calendars.event(p, "calendar", action.action_id)["UID"]) for p in calendars}
    assert uids == {f"{action.action_id}@crm-automation"}
    for person in calendars:  # one resource each, the invitee's own name among them
        assert harness.calendars.names(person, "calendar") == [ev.resource_name(action.action_id)]
    wait_for(lambda: harness.event_rows() == 3, what="three log rows, none twice")

    harness.send(completion("DEAL:4711", "e-9"))
    wait_for(
        lambda: all(
            str(harness.calendars.event(p, "calendar", action.action_id).get(ev.X_STATUS, ""))
            == "COMPLETED"
            for p in calendars
        ),
        what="the activity completed in every calendar",
    )
    assert (
        harness.metric(
            "crm_automation_sink_writes_total", sink="calendar", kind="invitee", outcome="created"
        )
        == 2
    )


def test_replaying_the_actions_topic_from_the_beginning_creates_no_second_event(
    harness: Harness,
) -> None:
    user = unique("u")
    actions = [
        plan_action(user, item=f"DEAL:{i}", start=T0 + timedelta(hours=i)) for i in range(10)
    ]
    harness.send(*actions)
    harness.send(actions[3], actions[7])  # duplicates on the topic as well
    harness.start_sink()
    wait_for(lambda: len(harness.calendars.names(user, "calendar")) == 10, what="10 events")
    wait_for(lambda: harness.event_rows() == 10, what="10 log rows")
    harness.stop_sinks()

    harness.start_sink(group=unique("replay"))  # a new group reads from the beginning
    wait_for(
        lambda: (
            harness.metric(
                "crm_automation_sink_writes_total", sink="calendar", kind="event", outcome="exists"
            )
            >= 12
        ),
        what="the replay",
    )
    assert harness.calendars.names(user, "calendar") == sorted(
        ev.resource_name(a.action_id) for a in actions
    )
    assert harness.event_rows() == 10


def test_a_room_clash_is_reported_as_a_failed_execution_and_the_room_is_not_double_booked(
    harness: Harness,
) -> None:
    room, first_user, second_user = unique("room"), unique("u"), unique("u")
    first = plan_action(first_user, item="DEAL:1", room=room)
    overlapping = plan_action(
        second_user, item="DEAL:2", room=room, start=T0 + timedelta(minutes=15)
    )
    later = plan_action(second_user, item="DEAL:3", room=room, start=T0 + timedelta(minutes=30))
    harness.send(first)
    harness.start_sink()
    wait_for(lambda: harness.calendars.names(room, "room") != [], what="the room booking")
    harness.send(overlapping, later)

    (message,) = harness.read(topics.EXECUTIONS, 1)
    execution = codec.decode(message.value())
    assert isinstance(execution, Execution)
    assert execution.status == ExecutionStatus.FAILED
    assert execution.reason == "room_busy"
    assert (execution.action_id, execution.rule_id, execution.item_key, execution.event_id) == (
        overlapping.action_id,
        "call-client",
        "DEAL:2",
        "evt-1",
    )
    wait_for(lambda: len(harness.calendars.names(room, "room")) == 2, what="the later booking")
    assert harness.calendars.names(room, "room") == sorted(
        ev.resource_name(a.action_id) for a in (first, later)
    )
    # The person's event is created even though the room was busy.
    assert harness.calendars.event(second_user, "calendar", overlapping.action_id) is not None


def test_leaving_the_stage_completes_the_activitys_events_whichever_arrives_first(
    harness: Harness,
) -> None:
    user, room = unique("u"), unique("room")
    before = plan_action(user, item="DEAL:1", entry="e-1", room=room, complete_on_exit=True)
    kept = plan_action(
        user, item="DEAL:1", entry="e-1", start=T0 + timedelta(hours=3), complete_on_exit=False
    )
    late = plan_action(user, item="DEAL:2", entry="e-2", complete_on_exit=True)
    harness.send(before, kept)
    harness.start_sink()
    wait_for(lambda: len(harness.calendars.names(user, "calendar")) == 2, what="two events")
    harness.send(completion("DEAL:1", "e-1"), completion("DEAL:2", "e-2"))
    wait_for(
        lambda: (
            str(harness.calendars.event(user, "calendar", before.action_id).get(ev.X_STATUS, ""))
            == "COMPLETED"
        ),
        what="completion",
    )
    assert str(harness.calendars.event(room, "room", before.action_id)[ev.X_STATUS]) == "COMPLETED"
    done = harness.calendars.event(user, "calendar", before.action_id)
    assert str(done["SUMMARY"]).startswith("✓ ")  # what the person sees in Radicale's clients
    assert "Completed" in [str(c) for cs in done["CATEGORIES"] for c in cs.cats]
    open_event = harness.calendars.event(user, "calendar", kept.action_id)
    assert ev.X_STATUS not in open_event and not str(open_event["SUMMARY"]).startswith("✓")

    harness.send(late)  # its stage entry was left before it arrived
    wait_for(
        lambda: harness.calendars.event(user, "calendar", late.action_id) is not None,
        what="the late event",
    )
    late_event = harness.calendars.event(user, "calendar", late.action_id)
    assert str(late_event[ev.X_STATUS]) == "COMPLETED"
    assert int(late_event["SEQUENCE"]) == 1


def test_invalid_and_refused_actions_go_to_the_dlq_and_the_sink_moves_on(
    harness: Harness,
) -> None:
    user = unique("u")
    refused = plan_action("bad:user")  # not usable as a calendar owner
    after = plan_action(user, item="DEAL:9")
    harness.send_raw(b"DEAL:1", b"\xc3\x01 not avro at all")
    harness.send(lead_action("DEAL:5"), refused)
    harness.send(after)
    harness.start_sink()

    wait_for(
        lambda: harness.calendars.event(user, "calendar", after.action_id) is not None,
        what="the event after the bad ones",
    )
    dead = harness.read(topics.DLQ, 2)
    reasons = sorted(dict(m.headers())[HEADER_REASON].decode() for m in dead)
    assert len(dead) == 2
    assert "invalid_calendar_owner" in reasons
    assert (
        harness.metric(
            "crm_automation_sink_writes_total",
            sink="calendar",
            kind="skipped",
            outcome="not_calendar",
        )
        == 1
    )


def test_stopping_radicale_for_20_seconds_delays_events_but_loses_none(
    stack: Any,
    database_url: str,
    own_radicale: Radicale,
) -> None:
    harness = Harness(stack, database_url, own_radicale.url)
    try:
        user = unique("u")
        first = [
            plan_action(user, item=f"DEAL:{i}", start=T0 + timedelta(hours=i)) for i in range(5)
        ]
        during = [
            plan_action(user, item=f"DEAL:{i}", start=T0 + timedelta(hours=i)) for i in range(5, 25)
        ]
        harness.start_sink()
        harness.send(*first)
        wait_for(lambda: len(harness.calendars.names(user, "calendar")) == 5, what="5 events")

        own_radicale.stop()
        stopped_at = time.monotonic()
        harness.send(*during)
        wait_for(
            lambda: harness.metric("crm_automation_sink_retries_total", sink="calendar") >= 2,
            what="retries",
        )
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped_at)))  # the outage itself
        own_radicale.start()

        wait_for(
            lambda: len(harness.calendars.names(user, "calendar")) == 25,
            timeout=60,
            what="all 25 events after the restart",
        )
        assert harness.calendars.names(user, "calendar") == sorted(
            ev.resource_name(a.action_id) for a in first + during
        )
        wait_for(lambda: harness.event_rows() == 25, what="25 log rows")
    finally:
        harness.close()


class RacingCalDAV(CalDAVClient):
    """After reading a room's bookings, waits (up to 3 s) for the other writer to read too.

    Without a claim across processes both writers read a free room here, then both book.
    """

    def __init__(self, url: str, barrier: threading.Barrier) -> None:
        super().__init__(url)
        self._barrier = barrier

    def events_between(
        self, calendar: CalendarRef, start: datetime, end: datetime
    ) -> list[StoredEvent]:
        found = super().events_between(calendar, start, end)
        if calendar.collection == "room":
            try:
                self._barrier.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass  # the other writer is held off by the claim: the expected case
        return found


def test_two_calendar_sinks_racing_for_a_room_slot_book_it_exactly_once(
    stack: Any, database_url: str
) -> None:
    room = unique("room")
    actions = [
        plan_action(unique("u"), item=f"DEAL:{n}", room=room, start=T0 + timedelta(minutes=n))
        for n in (1, 2)
    ]
    barrier = threading.Barrier(2)
    # Two writers as two sink processes have them: own CalDAV client, own database session.
    writers = [
        CalendarWriter(
            RacingCalDAV(stack.caldav_url, barrier), PostgresEventLog(database_url), SystemClock()
        )
        for _ in actions
    ]
    outcomes: list[BatchOutcome] = []
    threads = [
        threading.Thread(target=lambda w=w, a=a: outcomes.append(w.write([a])))
        for w, a in zip(writers, actions, strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for writer in writers:
            writer.close()

    assert len(outcomes) == 2, "a writer failed"
    busy = [e for o in outcomes for e in o.executions if e.reason == ROOM_BUSY]
    assert len(busy) == 1
    (booked,) = [a for a in actions if a.action_id != busy[0].action_id]
    reader = CalendarReader(stack.caldav_url)
    assert reader.names(room, "room") == [ev.resource_name(booked.action_id)]
    for action in actions:  # each person's own event is created either way
        assert isinstance(action.payload, PlanActivity)
        assert reader.event(action.payload.responsible_id, "calendar", action.action_id)
