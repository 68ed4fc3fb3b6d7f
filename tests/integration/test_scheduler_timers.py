"""Scheduler against real Postgres with a fake clock: due times, cancels, races, wake-ups."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from automation_core.model import (
    Action,
    ActionMode,
    CreateLead,
    Execution,
    ExecutionStatus,
    TimerCommand,
    TimerCommandKind,
)
from runtime import codec, db, kafka_clients, offsets, topics
from runtime.clock import FakeClock, SystemClock
from runtime.consume import OVERLAP_SWITCH_INTERVAL
from scheduler.fire import FireLoop
from scheduler.ingest import Ingest
from scheduler.metrics import SchedulerMetrics
from scheduler.process import ingest_loop
from scheduler.publisher import Outgoing
from scheduler.timer_batch import TimerBatch

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ACTIONS, EXECUTIONS = "automation.actions", "automation.executions"


# --- builders ---------------------------------------------------------------------------


def action(
    action_id: str,
    *,
    item: str = "DEAL:1",
    rule: str = "renewal-lead",
    entry: str = "evt-1",
    occurred_at: datetime = T0,
    due_at: datetime,
    version: str = "v1",
) -> Action:
    return Action(
        action_id=action_id,
        rule_id=rule,
        rule_version=version,
        item_key=item,
        event_id=entry,
        stage_entry_id=entry,
        occurred_at=occurred_at,
        mode=ActionMode.DELAYED,
        payload=CreateLead(
            lead_id=f"lead-{action_id}",
            title="Renew maintenance",
            responsible_id="u-7",
            company=None,
            contacts=(),
        ),
        due_at=due_at,
    )


def schedule(
    action_id: str,
    *,
    item: str = "DEAL:1",
    rule: str = "renewal-lead",
    entry: str = "evt-1",
    issued_at: datetime = T0,
    due_at: datetime,
    version: str = "v1",
) -> TimerCommand:
    a = action(
        action_id,
        item=item,
        rule=rule,
        entry=entry,
        occurred_at=issued_at,
        due_at=due_at,
        version=version,
    )
    return TimerCommand(
        kind=TimerCommandKind.SCHEDULE,
        issued_at=issued_at,
        item_key=item,
        stage_entry_id=entry,
        rule_id=rule,
        due_at=due_at,
        action=a,
    )


def cancel_entry(item: str, entry: str, issued_at: datetime = T0) -> TimerCommand:
    return TimerCommand(
        kind=TimerCommandKind.CANCEL_STAGE_ENTRY,
        issued_at=issued_at,
        item_key=item,
        stage_entry_id=entry,
    )


def cancel_rule(rule: str, issued_at: datetime, version: str | None = None) -> TimerCommand:
    return TimerCommand(
        kind=TimerCommandKind.CANCEL_RULE, issued_at=issued_at, rule_id=rule, rule_version=version
    )


def batch(*commands: TimerCommand) -> TimerBatch:
    b = TimerBatch()
    for command in commands:
        b.add(command)
    return b


class RecordingPublisher:
    """A `Publisher` that keeps what it was given (thread-safe)."""

    def __init__(self) -> None:
        self.records: list[Outgoing] = []
        self.batch_sizes: list[int] = []
        """Actions per publish: timers per fired batch."""
        self._lock = threading.Lock()

    def publish(self, records: Iterable[Outgoing]) -> None:
        records = list(records)  # read once, as the Kafka publisher does
        with self._lock:
            self.records.extend(records)
            self.batch_sizes.append(sum(r.topic == ACTIONS for r in records))

    def fired_action_ids(self) -> list[str]:
        with self._lock:
            return [
                codec.decode_as(r.value or b"", Action).action_id
                for r in self.records
                if r.topic == ACTIONS
            ]

    def executions(self) -> list[Execution]:
        with self._lock:
            return [
                codec.decode_as(r.value or b"", Execution)
                for r in self.records
                if r.topic == EXECUTIONS
            ]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def database_url(stack: Any) -> Iterator[str]:
    """A fresh, migrated database per test on the stack's Postgres server."""
    name = f"sched_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(stack.database_url, dbname=name)
    db.migrate(url)
    yield url
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Scheduler:
    """An ingest loop and a fire loop on one database, a fake clock and a recording port."""

    def __init__(self, url: str, clock: Any, *, batch_size: int = 1000, poll: float = 1.0):
        self.url = url
        self.clock = clock
        self.publisher = RecordingPublisher()
        metrics = SchedulerMetrics.create(CollectorRegistry())
        self.fire = FireLoop(
            self.connect,
            self.publisher,
            clock,
            metrics,
            actions_topic=ACTIONS,
            executions_topic=EXECUTIONS,
            batch_size=batch_size,
            poll_seconds=poll,
        )
        self.ingest = Ingest(
            self.connect,
            self.publisher,
            clock,
            metrics,
            executions_topic=EXECUTIONS,
            on_due=self.fire.notify_due,
        )

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def status_of(self, timer_id: str) -> str:
        with self.connect() as conn:
            row = conn.execute("SELECT status FROM timers WHERE timer_id = %s", (timer_id,))
            return str(row.fetchone()[0])  # type: ignore[index]

    def close(self) -> None:
        self.fire.close()
        self.ingest.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def scheduler(database_url: str, clock: FakeClock) -> Iterator[Scheduler]:
    s = Scheduler(database_url, clock)
    yield s
    s.close()


# --- tests ------------------------------------------------------------------------------


def test_a_timer_180_days_out_fires_exactly_at_its_due_time_not_a_millisecond_earlier(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=180)
    command = schedule("a-180d", due_at=due)
    scheduler.ingest.write(batch(command))

    clock.set(due - timedelta(milliseconds=1))
    assert scheduler.fire.fire_once() == 0
    assert scheduler.publisher.fired_action_ids() == []

    clock.set(due)
    assert scheduler.fire.fire_once() == 1
    [produced] = [r for r in scheduler.publisher.records if r.topic == ACTIONS]
    assert produced.key == b"DEAL:1"
    assert codec.decode_as(produced.value or b"", Action) == command.action
    [fired] = scheduler.publisher.executions()
    assert (fired.status, fired.action_id, fired.due_at) == (ExecutionStatus.FIRED, "a-180d", due)
    assert scheduler.status_of("a-180d") == "fired"
    assert scheduler.fire.fire_once() == 0


def test_a_running_fire_loop_fires_when_the_fake_clock_reaches_the_due_time(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=180)
    scheduler.ingest.write(batch(schedule("a-loop", due_at=due)))
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.fire.run, args=(stop,))
    runner.start()
    try:
        clock.advance(timedelta(days=179, hours=23, minutes=59, seconds=59))
        time.sleep(0.2)  # give the loop time to (wrongly) fire; it must not
        assert scheduler.publisher.fired_action_ids() == []
        clock.advance(timedelta(seconds=1))
        wait_until(lambda: scheduler.publisher.fired_action_ids() == ["a-loop"])
    finally:
        stop.set()
        scheduler.fire.interrupt()
        runner.join()


def test_a_cancelled_timer_never_fires_and_its_cancellation_is_logged(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=7)
    scheduler.ingest.write(batch(schedule("a-cancel", entry="evt-1", due_at=due)))
    scheduler.ingest.write(batch(cancel_entry("DEAL:1", "evt-1", T0 + timedelta(hours=1))))

    clock.set(due + timedelta(days=200))
    assert scheduler.fire.fire_once() == 0
    assert scheduler.publisher.fired_action_ids() == []
    [cancelled] = scheduler.publisher.executions()
    assert (cancelled.status, cancelled.action_id, cancelled.reason) == (
        ExecutionStatus.CANCELLED,
        "a-cancel",
        "stage_exit",
    )
    assert scheduler.status_of("a-cancel") == "cancelled"


def test_a_cancel_that_arrives_before_its_schedule_still_wins(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=1)
    scheduler.ingest.write(batch(cancel_entry("DEAL:1", "evt-1")))
    scheduler.ingest.write(batch(schedule("a-late", entry="evt-1", due_at=due)))
    # Another stage entry of the same item is not affected.
    scheduler.ingest.write(batch(schedule("a-other", entry="evt-2", due_at=due)))

    clock.set(due)
    assert scheduler.fire.fire_once() == 1
    assert scheduler.publisher.fired_action_ids() == ["a-other"]
    assert scheduler.status_of("a-late") == "cancelled"
    assert [
        e.action_id
        for e in scheduler.publisher.executions()
        if e.status is ExecutionStatus.CANCELLED
    ] == ["a-late"]


def test_a_schedule_and_its_cancel_in_one_batch_cancel_in_either_order(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=1)
    scheduler.ingest.write(
        batch(
            cancel_entry("DEAL:1", "evt-1"),
            schedule("a-first", entry="evt-1", due_at=due),
        )
    )
    scheduler.ingest.write(
        batch(
            schedule("a-second", item="DEAL:2", entry="evt-9", due_at=due),
            cancel_entry("DEAL:2", "evt-9"),
        )
    )
    clock.set(due)
    assert scheduler.fire.fire_once() == 0
    assert scheduler.status_of("a-first") == scheduler.status_of("a-second") == "cancelled"


def test_a_rule_wide_cancel_removes_all_its_pending_timers_and_spares_newer_schedules(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=30)
    disabled_at = T0 + timedelta(hours=2)
    scheduler.ingest.write(
        batch(
            *[
                schedule(f"a-old-{i}", item=f"DEAL:{i}", rule="renewal-lead", due_at=due)
                for i in range(50)
            ],
            schedule("a-other-rule", item="DEAL:99", rule="call-client", due_at=due),
        )
    )
    scheduler.ingest.write(batch(cancel_rule("renewal-lead", disabled_at)))
    # Read after the cancel: issued before it (cancelled), and after re-enabling (kept).
    scheduler.ingest.write(
        batch(
            schedule(
                "a-straggler",
                item="DEAL:77",
                rule="renewal-lead",
                issued_at=disabled_at - timedelta(minutes=1),
                due_at=due,
            ),
            schedule(
                "a-reenabled",
                item="DEAL:78",
                rule="renewal-lead",
                issued_at=disabled_at + timedelta(minutes=1),
                due_at=due,
            ),
        )
    )

    clock.set(due)
    assert scheduler.fire.fire_once() == 2
    assert sorted(scheduler.publisher.fired_action_ids()) == ["a-other-rule", "a-reenabled"]
    cancelled = [
        e for e in scheduler.publisher.executions() if e.status is ExecutionStatus.CANCELLED
    ]
    assert len(cancelled) == 51
    assert {e.reason for e in cancelled} == {"rule_cancelled"}


def test_a_version_cancel_removes_that_versions_timers_also_late_ones_and_spares_the_new_version(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    due = T0 + timedelta(days=30)
    edited_at = T0 + timedelta(days=1)
    scheduler.ingest.write(
        batch(
            *[schedule(f"a-v1-{i}", item=f"DEAL:{i}", due_at=due) for i in range(3)],
            schedule("a-v2-early", item="DEAL:10", due_at=due, version="v2"),
        )
    )
    scheduler.ingest.write(batch(cancel_rule("renewal-lead", edited_at, version="v1")))
    # Read after the cancel: a v1 schedule still in flight (cancelled, whenever issued),
    # and the new version's (kept, even when issued before the edit).
    scheduler.ingest.write(
        batch(
            schedule("a-v1-late", item="DEAL:20", due_at=due, issued_at=edited_at),
            schedule("a-v2-late", item="DEAL:21", due_at=due, issued_at=T0, version="v2"),
        )
    )

    clock.set(due)
    assert scheduler.fire.fire_once() == 2
    assert sorted(scheduler.publisher.fired_action_ids()) == ["a-v2-early", "a-v2-late"]
    cancelled = [
        e for e in scheduler.publisher.executions() if e.status is ExecutionStatus.CANCELLED
    ]
    assert sorted(e.action_id or "" for e in cancelled) == [
        "a-v1-0", "a-v1-1", "a-v1-2", "a-v1-late"
    ]  # fmt: skip
    assert {(e.reason, e.rule_version) for e in cancelled} == {("rule_changed", "v1")}


def test_a_replayed_schedule_of_a_fired_timer_does_not_fire_again(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    command = schedule("a-replay", due_at=T0 + timedelta(minutes=5))
    scheduler.ingest.write(batch(command, command))
    clock.advance(timedelta(minutes=5))
    assert scheduler.fire.fire_once() == 1
    scheduler.ingest.write(batch(command))
    clock.advance(timedelta(days=1))
    assert scheduler.fire.fire_once() == 0
    assert scheduler.publisher.fired_action_ids() == ["a-replay"]


def test_a_batch_mixing_a_replayed_schedule_with_new_ones_stores_only_the_new_ones(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    # New schedules are copied straight into the table; a batch holding one already
    # there takes the staging path: its new schedules must still be stored, a tombstone
    # must still cancel, and the replayed timer must keep its state.
    fired = schedule("a-fired", due_at=T0 + timedelta(minutes=5))
    scheduler.ingest.write(batch(fired, cancel_entry("DEAL:7", "evt-7")))
    clock.advance(timedelta(minutes=5))
    assert scheduler.fire.fire_once() == 1
    due = T0 + timedelta(days=1)
    result = scheduler.ingest.write(
        batch(
            schedule("a-new", item="DEAL:2", entry="evt-2", due_at=due),
            fired,
            schedule("a-covered", item="DEAL:7", entry="evt-7", due_at=due),
        )
    )
    assert (result.scheduled, [ref.timer_id for ref in result.cancelled]) == (1, ["a-covered"])
    assert [scheduler.status_of(t) for t in ("a-new", "a-fired", "a-covered")] == [
        "pending",
        "fired",
        "cancelled",
    ]
    clock.set(due)
    assert scheduler.fire.fire_once() == 1
    assert scheduler.publisher.fired_action_ids() == ["a-fired", "a-new"]


def test_overdue_timers_fire_at_once_oldest_first(database_url: str, clock: FakeClock) -> None:
    s = Scheduler(database_url, clock, batch_size=3)
    try:
        dues = [T0 + timedelta(hours=h) for h in (5, 1, 4, 2, 3)]
        s.ingest.write(
            batch(*[schedule(f"a-{d.hour}", item=f"DEAL:{d.hour}", due_at=d) for d in dues])
        )
        clock.set(T0 + timedelta(days=3))  # the scheduler was down for days
        assert s.fire.fire_once() == 3
        assert s.fire.fire_once() == 2
        assert s.publisher.fired_action_ids() == ["a-11", "a-12", "a-13", "a-14", "a-15"]
    finally:
        s.close()


def test_the_offsets_are_stored_in_the_same_transaction_as_the_timers(
    scheduler: Scheduler,
) -> None:
    b = batch(schedule("a-off", due_at=T0 + timedelta(days=1)))
    b.next_offsets[("automation.timers", 3)] = 42
    scheduler.ingest.write(b)
    assert scheduler.ingest.stored_offsets() == {("automation.timers", 3): 42}


def test_two_fire_loops_racing_over_the_same_due_timers_fire_each_exactly_once(
    database_url: str, clock: FakeClock
) -> None:
    first = Scheduler(database_url, clock, batch_size=25)
    second = Scheduler(database_url, clock, batch_size=25)
    try:
        ids = [f"a-race-{i}" for i in range(2000)]
        first.ingest.write(
            batch(
                *[
                    schedule(a, item=f"DEAL:{i}", due_at=T0 + timedelta(seconds=i % 60))
                    for i, a in enumerate(ids)
                ]
            )
        )
        clock.set(T0 + timedelta(minutes=1))
        stop = threading.Event()
        runners = [threading.Thread(target=s.fire.run, args=(stop,)) for s in (first, second)]
        for runner in runners:
            runner.start()
        try:
            wait_until(
                lambda: (
                    len(first.publisher.fired_action_ids())
                    + len(second.publisher.fired_action_ids())
                    >= len(ids)
                ),
                timeout=60,
            )
        finally:
            stop.set()
            first.fire.interrupt()
            second.fire.interrupt()
            for runner in runners:
                runner.join()
        fired = Tally(first.publisher.fired_action_ids() + second.publisher.fired_action_ids())
        assert set(fired) == set(ids)
        assert max(fired.values()) == 1
        assert first.publisher.fired_action_ids() and second.publisher.fired_action_ids()
    finally:
        first.close()
        second.close()


def test_a_backlog_fires_oldest_first_in_batches_that_double_up_to_eight_times_the_size(
    database_url: str, clock: FakeClock
) -> None:
    s = Scheduler(database_url, clock, batch_size=2)
    stop = threading.Event()
    runner = threading.Thread(target=s.fire.run, args=(stop,))
    try:
        ids = [f"a-backlog-{i:02}" for i in range(60)]
        s.ingest.write(
            batch(
                *[
                    schedule(a, item=f"DEAL:{i}", due_at=T0 + timedelta(seconds=i))
                    for i, a in enumerate(ids)
                ]
            )
        )
        clock.set(T0 + timedelta(minutes=1))
        runner.start()
        wait_until(lambda: len(s.publisher.fired_action_ids()) >= len(ids), timeout=30)
    finally:
        stop.set()
        s.fire.interrupt()
        if runner.is_alive():
            runner.join()
        s.close()
    assert s.publisher.fired_action_ids() == ids
    assert s.publisher.batch_sizes == [2, 4, 8, 16, 16, 14]


def test_a_newly_ingested_timer_wakes_the_fire_loop_before_its_next_poll(
    database_url: str,
) -> None:
    s = Scheduler(database_url, SystemClock(), poll=60.0)
    stop = threading.Event()
    runner = threading.Thread(target=s.fire.run, args=(stop,))
    runner.start()
    try:
        time.sleep(0.3)  # the loop is now asleep for up to a minute
        due = datetime.now(UTC) + timedelta(milliseconds=300)
        s.ingest.write(batch(schedule("a-wake", issued_at=datetime.now(UTC), due_at=due)))
        wait_until(lambda: s.publisher.fired_action_ids() == ["a-wake"], timeout=5)
        late = datetime.now(UTC) - due
        assert timedelta(0) <= late < timedelta(seconds=1)
    finally:
        stop.set()
        s.fire.interrupt()
        runner.join()
        s.close()


def test_the_ingest_loop_stores_every_consumed_schedule_with_its_offsets_while_overlapping(
    stack: Any, database_url: str, scheduler: Scheduler
) -> None:
    # The scheduler's own loop (`scheduler.process.ingest_loop`): batches of 3 from Kafka,
    # each decoded while the last one is written, committed in order with their offsets.
    settings = stack.settings.model_copy(
        update={"topic_prefix": f"ingest-{uuid.uuid4().hex[:6]}.", "batch_size": 3}
    )
    topics.create_topics(AdminClient(kafka_clients.admin_config(settings)), settings)
    producer = Producer(kafka_clients.producer_config(settings))
    due = T0 + timedelta(days=1)
    ids = [f"loop-{i}" for i in range(20)]
    for timer_id in ids:
        command = schedule(timer_id, item="DEAL:7", due_at=due)
        producer.produce(settings.topic(topics.TIMERS), key=b"DEAL:7", value=codec.encode(command))
    producer.flush(30)
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    stop = threading.Event()
    group = f"ingest-{uuid.uuid4().hex[:6]}"
    ingest = Ingest(
        scheduler.connect,
        scheduler.publisher,
        SystemClock(),
        SchedulerMetrics.create(CollectorRegistry()),
        executions_topic=EXECUTIONS,
        group=group,
    )
    loop = ingest_loop(
        ingest,
        settings,
        database_url,
        SchedulerMetrics.create(CollectorRegistry()),
        stop,
        producer,
    )
    assert sys.getswitchinterval() == pytest.approx(OVERLAP_SWITCH_INTERVAL)
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        with scheduler.connect() as conn:
            wait_until(lambda: sum(offsets.stored_offsets(conn, group).values()) >= 20, 60)
            stored = conn.execute("SELECT timer_id FROM timers ORDER BY timer_id").fetchall()
    finally:
        stop.set()
        runner.join(30)
        sys.setswitchinterval(before)  # as it was, for the tests after it
    assert sorted(r[0] for r in stored) == sorted(ids)
