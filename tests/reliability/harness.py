"""Fault-injection harness: steady load, expected actions from the pure core, a checker.

A scenario starts the four processors as CLI processes (`Pipeline`), produces StageChanged
events at a fixed rate (`Load`, confluent-kafka, a mix of immediate and few-seconds
delayed rules incl. plan_activity with calendar entries), injects its faults, then
`Pipeline.finish` waits until every action the pure core expects from the delivered
events is in Postgres (leads, deals, activities by action_id) and in Radicale, and
returns a `Row`: events in, actions expected, found, duplicates, lost, DLQ count,
recovery time (fault end -> every action owed by then found) and p99 latency (action
due -> row written).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from automation_core.evaluate import rule_index_from
from automation_core.model import (
    Action,
    Company,
    Contact,
    EntityType,
    Item,
    PlanActivity,
    StageChanged,
)
from automation_core.rules_file import validate_rules_file
from automation_core.simulate import simulate
from runtime import codec, kafka_clients, topics
from runtime.settings import Settings
from sinks.calendar.caldav_client import CalDAVClient, CalendarRef
from tests.integration.support import read_topic, reserve_port, run_cli, start_cli

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, APPROVAL, WON, LOST]}
  - {id: installation, entity_type: DEAL, stages: [NEW, SCHEDULED, DONE]}
rules:
  - id: copy-won
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: copy_deal, target_pipeline: installation}
  - id: renewal-lead
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 3s}
    action: {type: create_lead, title: "Renew: {{ company.title }} / {{ item.title }}"}
  - id: check-approval
    trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
    action:
      type: plan_activity
      subject: Check the offer
      description: "{{ item.title }} for {{ contact.name }}"
      deadline: {delay: 1d}
  - id: call-approval
    trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
    condition: {any: [{all: [{field: amount, op: gt, value: "8000"}]}]}
    when: {delay: 2s}
    action:
      type: plan_activity
      subject: Call the client
      description: "Call {{ contact.name }} about {{ item.title }}"
      deadline: {delay: 1d}
      calendar: {duration: 30m}
"""

PROCESSES: dict[str, tuple[str, ...]] = {
    "engine": ("engine",),
    "scheduler": ("scheduler",),
    "sink-postgres": ("sink", "postgres"),
    "sink-calendar": ("sink", "calendar"),
}
METRICS = ("ENGINE", "SCHEDULER", "SINK_POSTGRES", "SINK_CALENDAR")
TABLES = ("leads", "deals", "activities")
USERS_PER_RUN = 6


@dataclass(frozen=True)
class Expected:
    action_id: str
    table: str
    calendar: bool
    due: datetime
    """When the action should happen: the event's time, or the timer's due time."""


@dataclass
class Row:
    scenario: str
    events_in: int
    expected: int
    found: int
    duplicates: int
    lost: int
    dlq: int
    recovery_s: float
    p99_latency_s: float
    notes: str = ""

    def line(self) -> str:
        return (
            f"| {self.scenario} | {self.events_in} | {self.expected} | {self.found} | "
            f"{self.duplicates} | {self.lost} | {self.dlq} | {self.recovery_s:.1f} | "
            f"{self.p99_latency_s:.2f} |"
        )


RESULTS = Path(__file__).resolve().parents[2] / "build" / "reliability-results.jsonl"
HEADER = (
    "| scenario | events in | actions expected | found | duplicates | lost | DLQ |"
    " recovery s | p99 latency s |\n|---|---|---|---|---|---|---|---|---|"
)
ROWS: list[Row] = []
"""The rows recorded in this test session (the terminal summary prints them as a table)."""


def record(row: Row) -> None:
    """Print the row and append it to build/reliability-results.jsonl (RELIABILITY.md)."""
    ROWS.append(row)
    print(f"\nRELIABILITY {row.line()}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(asdict(row)) + "\n")


def table_for(action: Action) -> str:
    kind = action.kind.value
    return {"create_lead": "leads", "copy_deal": "deals", "plan_activity": "activities"}[kind]


def expected_actions(events: Iterable[StageChanged]) -> dict[str, Expected]:
    """The actions the pure core decides for `events` in this order (one engine's view)."""
    rules = validate_rules_file(RULES)
    index = rule_index_from(rules.rules)
    out: dict[str, Expected] = {}
    for step in simulate(events, index):
        decided = [(a, a.occurred_at) for a in step.decision.actions]
        decided += [(t.action, t.due_at) for t in step.decision.timers if t.action is not None]
        for action, due in decided:
            assert due is not None
            calendar = isinstance(action.payload, PlanActivity) and action.payload.add_to_calendar
            out[action.action_id] = Expected(action.action_id, table_for(action), calendar, due)
    return out


class Load:
    """Produces StageChanged events at `rate` per second on a thread; keeps what was acked.

    Items are new (one event each: WON or APPROVAL) unless a scenario sends more with
    `send`; `delivered` lists the events Kafka acknowledged, in produce order.
    """

    def __init__(self, settings: Settings, run_id: str, seed: int) -> None:
        self._settings = settings
        self._topic = settings.topic(topics.STAGE_CHANGES)
        self._producer = Producer(
            kafka_clients.producer_config(
                settings, **{"message.timeout.ms": 300_000, "message.max.bytes": 1_100_000}
            )
        )
        self._random = random.Random(seed)
        self.run_id = run_id
        self.users = [f"u-{run_id}-{n}" for n in range(USERS_PER_RUN)]
        self._lock = threading.Lock()
        self._sent: list[tuple[int, StageChanged]] = []
        self._acked: set[int] = set()
        self.failed = 0
        self.raw_sent = 0
        self._count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- events ---------------------------------------------------------------------

    def new_event(
        self,
        stage: str | None = None,
        *,
        item_id: str | None = None,
        at: datetime | None = None,
        title: str | None = None,
        contacts: tuple[Contact, ...] | None = None,
        company_title: str | None = None,
    ) -> StageChanged:
        self._count += 1
        n = self._count
        r = self._random
        amount = Decimal(r.randrange(1000, 10_000))
        return StageChanged(
            event_id=f"evt-{self.run_id}-{n}",
            occurred_at=at or datetime.now(UTC),
            entity_type=EntityType.DEAL,
            item_id=item_id or f"{self.run_id}-{n}",
            pipeline_id="sales",
            stage_id=stage or r.choice(("WON", "APPROVAL")),
            previous_stage_id="NEW",
            item=Item(
                title=title or f"Maintenance {n}",
                responsible_id=r.choice(self.users),
                amount=amount,
                currency="EUR",
                company=Company(f"c-{n % 50}", company_title or f"Company {n % 50}"),
                contacts=contacts
                or (Contact(f"p-{n}", "Anna", "Muster", "anna@example.com", "+49 30 1"),),
            ),
        )

    def send(self, event: StageChanged) -> None:
        """Produce one event (its acknowledgement is tracked)."""
        with self._lock:
            index = len(self._sent)
            self._sent.append((index, event))

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            with self._lock:
                if error is None:
                    self._acked.add(index)
                else:
                    self.failed += 1

        self._produce(event.key.encode(), codec.encode(event), on_delivery)

    def send_raw(
        self,
        key: bytes | None,
        value: bytes | None,
        on_position: Callable[[tuple[int, int]], None] = lambda _p: None,
    ) -> None:
        """Produce bytes that are not (necessarily) a valid event; `on_position` gets
        its (partition, offset) once Kafka has it."""
        self.raw_sent += 1

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                on_position((message.partition() or 0, message.offset() or 0))
            else:
                with self._lock:
                    self.failed += 1

        self._produce(key, value, on_delivery)

    def _produce(self, key: bytes | None, value: bytes | None, callback: Any) -> None:
        while True:
            try:
                self._producer.produce(self._topic, key=key, value=value, on_delivery=callback)
                self._producer.poll(0)
                return
            except BufferError:
                self._producer.poll(0.1)

    @property
    def delivered(self) -> list[StageChanged]:
        with self._lock:
            return [event for index, event in self._sent if index in self._acked]

    # --- the steady stream ------------------------------------------------------------

    def start(self, rate: float, seconds: float) -> Load:
        def loop() -> None:
            started = time.monotonic()
            sent = 0
            while not self._stop.is_set():
                elapsed = time.monotonic() - started
                if elapsed >= seconds:
                    break
                while sent < int(elapsed * rate):
                    self.send(self.new_event())
                    sent += 1
                self._producer.poll(0.01)

        self._thread = threading.Thread(target=loop, name="load", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float = 600) -> None:
        """Wait for the stream to end and every produced message to be acknowledged."""
        if self._thread is not None:
            self._thread.join(timeout)
        remaining = self._producer.flush(300)
        assert remaining == 0, f"{remaining} events never acknowledged by Kafka"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._producer.flush(30)


@dataclass
class Fault:
    what: str
    started: float
    ended: float


@dataclass
class Pipeline:
    """The four processors as CLI processes, restarted by the test after a fault."""

    settings: Settings
    tmp_path: Path
    caldav_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)

    def apply_rules(self) -> None:
        path = self.tmp_path / "rules.yaml"
        path.write_text(RULES)
        result = run_cli(self.settings, self.tmp_path, "rules", "apply", str(path))
        assert result.returncode == 0, result.stderr

    def start(self, *names: str) -> None:
        """Start processors by name; `sink-postgres#2` is a second instance."""
        for name in names or tuple(PROCESSES):
            argv = PROCESSES[name.split("#")[0]]
            ports = {f"CRM_AUTOMATION_{p}_METRICS_PORT": str(reserve_port()) for p in METRICS}
            extra = ports if "#" in name else {}
            self.processes[name] = start_cli(self.settings, self.tmp_path, *argv, **extra)

    def signal(self, name: str, sig: int) -> None:
        process = self.processes[name]
        assert process.poll() is None, f"{name} exited on its own with {process.returncode}"
        process.send_signal(sig)
        if sig == signal.SIGKILL:
            process.wait(timeout=30)

    def kill_and_restart(self, name: str, down_seconds: float = 0.0) -> None:
        started = time.time()
        self.signal(name, signal.SIGKILL)
        if down_seconds:
            time.sleep(down_seconds)  # the outage itself: nothing to poll for
        self.start(name)
        self.faults.append(Fault(f"SIGKILL {name}", started, time.time()))

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                raise AssertionError(f"{name} did not stop on SIGTERM") from None

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}"

    # --- what arrived -------------------------------------------------------------------

    def rows(self) -> dict[str, list[tuple[str, datetime]]]:
        """action_id and write time of every row, by table (calendar: the sink's log)."""
        assert self.settings.database_url is not None
        found: dict[str, list[tuple[str, datetime]]] = {}
        try:
            with psycopg.connect(self.settings.database_url.get_secret_value()) as conn:
                for table in TABLES:
                    found[table] = conn.execute(
                        f"SELECT action_id, created_at FROM {table}"  # noqa: S608 - fixed names
                    ).fetchall()
                found["calendar_log"] = conn.execute(
                    "SELECT action_id, min(created_at) FROM calendar_events"
                    " WHERE calendar = 'user' GROUP BY action_id"
                ).fetchall()
        except psycopg.OperationalError:
            return {}
        return found

    def calendar_log(self, action_ids: list[str]) -> list[dict[str, Any]]:
        """What the calendar sink's log says of these actions, and what Radicale has."""
        assert self.settings.database_url is not None
        with psycopg.connect(self.settings.database_url.get_secret_value()) as conn:
            rows = conn.execute(
                "SELECT action_id, href, principal, created_at FROM calendar_events"
                " WHERE action_id = ANY(%s)",
                (action_ids,),
            ).fetchall()
        out = []
        with CalDAVClient(self.caldav_url, timeout=30) as client:
            for action_id, href, principal, at in rows:
                stored = client.get(CalendarRef.of_user(principal), href)
                out.append(
                    {"action_id": action_id, "href": href, "logged_at": at.isoformat(),
                     "in_radicale": stored is not None}
                )  # fmt: skip
        return out

    def calendar_action_ids(self, users: Iterable[str]) -> list[str]:
        """The action id of every event resource in the users' calendars (Radicale)."""
        ids: list[str] = []
        start = datetime(2000, 1, 1, tzinfo=UTC)
        with CalDAVClient(self.caldav_url, timeout=30) as client:
            for user in users:
                for stored in client.events_between(
                    CalendarRef.of_user(user), start, start + timedelta(days=365 * 100)
                ):
                    ids.append(stored.href.rstrip("/").rsplit("/", 1)[-1].removesuffix(".ics"))
        return ids

    def dlq_records(self) -> list[Message]:
        return read_topic(self.settings, topics.DLQ)

    def engine_lag(self) -> int | None:
        """Messages of crm.stage-changes the engine has not committed; None: unknown."""
        return group_lag(self.settings, self.settings.topic_prefix + "crm-automation-engine")

    def finish(
        self,
        scenario: str,
        load: Load,
        *,
        drain_timeout: float = 240,
        allowed: Iterable[str] = (),
    ) -> Row:
        """Wait until all expected actions are found (or the deadline), then count.

        An expected action in the DLQ (a sink refused it for good, with its reason) is
        accounted for, not lost; `allowed` actions may be written but are not required.
        """
        events = load.delivered
        expected = expected_actions(events)
        dead: set[str] = set()

        def excused(action_id: str) -> bool:
            return action_id in dead

        calendar_expected = {a for a, e in expected.items() if e.calendar}
        deadline = time.monotonic() + drain_timeout
        while True:
            found = self.rows()
            ids = {a for rows in (found.get(t, []) for t in TABLES) for a, _ in rows}
            calendar_ids = {a for a, _ in found.get("calendar_log", [])}
            missing = {a for a in expected if a not in ids} | (calendar_expected - calendar_ids)
            if missing:
                dead = dlq_action_ids(self.settings)
            missing = {a for a in missing if not excused(a)}
            if not missing or time.monotonic() > deadline:
                break
            self.assert_running()
            time.sleep(1)
        # Lag 0 as well: the engine has committed everything it read.
        lag_deadline = time.monotonic() + 60
        while (self.engine_lag() or 0) > 0 and time.monotonic() < lag_deadline:
            time.sleep(0.5)
        found = self.rows()
        users = load.users
        in_calendar = self.calendar_action_ids(users)
        written: dict[str, datetime] = {}
        row_ids: list[str] = []
        for table in TABLES:
            for action_id, at in found.get(table, []):
                row_ids.append(action_id)
                written[action_id] = at
        calendar_written = dict(found.get("calendar_log", []))
        unexpected = {a for a in row_ids if a not in expected} - set(allowed)
        duplicates = (
            (len(row_ids) - len(set(row_ids)))
            + (len(in_calendar) - len(set(in_calendar)))
            + len(unexpected)
            + len(set(in_calendar) - calendar_expected)
        )
        lost_rows = [a for a in expected if a not in written and not excused(a)]
        lost_calendar = [a for a in calendar_expected - set(in_calendar) if not excused(a)]
        found_count = sum(1 for a in expected if a in written) + len(
            calendar_expected & set(in_calendar)
        )
        latencies: list[float] = []
        for action_id, exp in expected.items():
            calendar_at = calendar_written.get(action_id) if exp.calendar else None
            for at in (written.get(action_id), calendar_at):
                if at is not None:
                    latencies.append(max(0.0, (at - exp.due).total_seconds()))
        recovery = 0.0
        for fault in self.faults:
            end = datetime.fromtimestamp(fault.ended, UTC)
            owed = [a for a, e in expected.items() if e.due <= end]
            times = [written.get(a) for a in owed]
            times += [calendar_written.get(a) for a in owed if expected[a].calendar]
            if any(t is None for t in times):
                recovery = float("inf")
                continue
            last = max((t for t in times if t is not None), default=end)
            recovery = max(recovery, (last - end).total_seconds())
        notes = f"unexpected sample {sorted(unexpected)[:3]}"
        if lost_rows or lost_calendar:
            notes += " " + self.where_lost(expected, lost_rows, lost_calendar)
        row = Row(
            scenario=scenario,
            events_in=len(events) + load.raw_sent,
            expected=len(expected) + len(calendar_expected),
            found=found_count,
            duplicates=duplicates,
            lost=len(lost_rows) + len(lost_calendar),
            dlq=len(self.dlq_records()),
            recovery_s=max(0.0, recovery),
            p99_latency_s=percentile(latencies, 0.99),
            notes=notes,
        )
        record(row)
        return row

    def where_lost(
        self, expected: dict[str, Expected], lost_rows: list[str], lost_calendar: list[str]
    ) -> str:
        """Which stage lost them: never emitted (engine/scheduler) or emitted, not written."""
        emitted = set()
        for message in read_topic(self.settings, topics.ACTIONS):
            action = codec.decode(message.value() or b"")
            if isinstance(action, Action):
                emitted.add(action.action_id)
        scheduled = set()
        for message in read_topic(self.settings, topics.TIMERS):
            command = codec.decode(message.value() or b"")
            action = getattr(command, "action", None)
            if action is not None:
                scheduled.add(action.action_id)
        by_kind: dict[str, int] = {}
        for where, ids in (("rows", lost_rows), ("calendar", lost_calendar)):
            for action_id in ids:
                stage = (
                    "emitted" if action_id in emitted
                    else "scheduled-not-fired" if action_id in scheduled
                    else "never-emitted"
                )  # fmt: skip
                kind = f"{where}/{expected[action_id].table}/{stage}"
                by_kind[kind] = by_kind.get(kind, 0) + 1
        detail: dict[str, Any] = {
            "lost_by": by_kind,
            "sample": sorted(lost_rows + lost_calendar)[:5],
            "calendar_log": self.calendar_log(lost_calendar),
        }
        (self.tmp_path / "lost.json").write_text(
            json.dumps({"rows": lost_rows, "calendar": lost_calendar, **detail})
        )
        return json.dumps(detail)


@contextlib.contextmanager
def running_pipeline(settings: Settings, tmp_path: Path, caldav_url: str) -> Iterator[Pipeline]:
    """Rules applied and all four processors running; stopped (SIGTERM) afterwards."""
    running = Pipeline(settings, tmp_path, caldav_url)
    running.apply_rules()
    running.start()
    try:
        yield running
    finally:
        running.stop_all()


def dlq_action_ids(settings: Settings) -> set[str]:
    """Actions a sink sent to the DLQ."""
    found = set()
    for message in read_topic(settings, topics.DLQ):
        try:
            record = codec.decode(message.value() or b"")
        except codec.InvalidMessage:
            continue
        if isinstance(record, Action):
            found.add(record.action_id)
    return found


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def group_lag(settings: Settings, group: str) -> int | None:
    """Sum over crm.stage-changes partitions of high watermark - committed offset."""
    name = settings.topic(topics.STAGE_CHANGES)
    consumer = Consumer(kafka_clients.consumer_config(settings, group))
    try:
        partitions = [TopicPartition(name, p) for p in range(settings.partitions)]
        committed = consumer.committed(partitions, timeout=10)
        lag = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, tp.partition), 10)
            position = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - position)
        return lag
    except Exception:  # noqa: BLE001 - broker restarting: unknown
        return None
    finally:
        consumer.close()


def random_moments(rng: random.Random, count: int, start: float, end: float) -> list[float]:
    """`count` moments spread over [start, end): one random moment in each equal slice."""
    width = (end - start) / count
    return [start + width * i + rng.uniform(0.2, 0.8) * width for i in range(count)]


def sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # fault timing is the point here, not a condition to poll
