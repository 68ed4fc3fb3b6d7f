"""Scheduler benchmark: ingest and firing rates against bare-SQL ceilings, lag, memory, size.

    .venv/bin/python bench/scheduler_bench.py [--quick] [--timers N] [--burst M]

Full: 1,000,000 pending timers, 100,000 of them due at once; --quick: 50,000 / 5,000.

Uses the configured services (CRM_AUTOMATION_DATABASE_URL and _KAFKA_BOOTSTRAP_SERVERS),
else starts a local stack of its own (bench/common.py); a fresh database is created on
the server and dropped afterwards; fired actions go to the real broker.
Rows are generated batch by batch, so the process's peak RSS is the scheduler's working set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from automation_core.model import (
    Action,
    ActionMode,
    CreateLead,
    TimerCommand,
    TimerCommandKind,
)
from crm_automation.stack.processes import free_port
from runtime import codec, db, kafka_clients, topics
from runtime.clock import SystemClock
from runtime.settings import Settings
from scheduler import timer_store
from scheduler.fire import FireLoop
from scheduler.ingest import Ingest
from scheduler.metrics import SchedulerMetrics
from scheduler.process import ingest_loop
from scheduler.publisher import KafkaPublisher, Outgoing
from scheduler.timer_batch import TimerBatch

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    CLI,
    metric_families,
    percentile,
    sample_sums,
    stack_env,
    stack_settings,
    start_processes,
    stop_process,
    wait_ready,
    write_result,
)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class DroppingPublisher:
    def publish(self, records: Any) -> None:
        for _record in records:  # built, as they would be for Kafka, then dropped
            pass


class Confirmed:
    """A fire loop's publisher, wrapped: when each batch's actions were confirmed, and how
    many. The fire loop marks timers fired when it claims them (`fired_at`), so firing ends
    (and the lag is measured) here, as the scheduler's own lag metric does."""

    def __init__(self, inner: Any, actions_topic: str, batches: list[tuple[datetime, int]]):
        self._inner, self._topic, self.batches = inner, actions_topic, batches

    def publish(self, records: Any) -> None:
        actions = 0

        def counted(records: Any) -> Iterator[Outgoing]:
            nonlocal actions
            for record in records:
                actions += record.topic == self._topic
                yield record

        self._inner.publish(counted(records))
        self.batches.append((datetime.now(UTC), actions))


def last_fired_at(logs: list[Path]) -> datetime:
    """The time of the last `fired timers=` line (logged after its commit) in JSON logs."""
    times = [
        datetime.fromisoformat(entry["time"])
        for log in logs
        for line in log.read_text().splitlines()
        if line.startswith("{")
        and (entry := json.loads(line))["message"].startswith("fired timers=")
    ]
    return max(times)


class Message:
    """A consumed Kafka message, as the ingest loop reads it."""

    __slots__ = ("_offset", "_value")

    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def topic(self) -> str:
        return "automation.timers"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b""

    def value(self) -> bytes:
        return self._value


def command(i: int, due_at: datetime, tag: str) -> TimerCommand:
    action_id = f"{tag}-{i:08d}"
    item = f"DEAL:{i}"
    action = Action(
        action_id=action_id,
        rule_id=f"rule-{i % 50}",
        rule_version="v1",
        item_key=item,
        event_id=f"evt-{tag}-{i}",
        stage_entry_id=f"evt-{tag}-{i}",
        occurred_at=T0,
        mode=ActionMode.DELAYED,
        payload=CreateLead(
            lead_id=f"lead-{action_id}",
            title=f"Renew maintenance {i}",
            responsible_id="u-7",
            company=None,
            contacts=(),
        ),
        due_at=due_at,
    )
    return TimerCommand(
        kind=TimerCommandKind.SCHEDULE,
        issued_at=T0,
        item_key=item,
        stage_entry_id=action.stage_entry_id,
        rule_id=action.rule_id,
        due_at=due_at,
        action=action,
    )


def far_due(i: int) -> datetime:
    return T0 + timedelta(days=30 + i % 150, seconds=i % 86_400)


def batches(start: int, count: int, size: int, tag: str, due: Any) -> Iterator[list[Message]]:
    for first in range(start, start + count, size):
        yield [
            Message(codec.encode(command(i, due(i), tag)), i)
            for i in range(first, min(first + size, start + count))
        ]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ingest_rate(
    ingest: Ingest,
    count: int,
    size: int,
    tag: str,
    due: Any,
    rss_marks: list[float] | None = None,
) -> float:
    """Timers/s through the scheduler's ingest step called directly (decode, sort, one
    transaction per batch): how the burst is stored, without Kafka."""
    elapsed, done = 0.0, 0
    for messages in batches(0, count, size, tag, due):
        started = time.perf_counter()
        ingest.write(TimerBatch.of(messages))
        elapsed += time.perf_counter() - started
        done += len(messages)
        if rss_marks is not None and done in (count // 10, count):
            rss_marks.append(rss_mb())
    return count / elapsed


def ingest_loop_rate(
    settings: Settings,
    ingest: Ingest,
    metrics: SchedulerMetrics,
    count: int,
    tag: str,
    due: Any,
    rss_marks: list[float],
    url: str,
) -> float:
    """Timers/s through the scheduler's own ingest loop (`scheduler.process.ingest_loop`:
    consume, decode, sort, one transaction per batch with its offsets, the next batch
    decoded while the last is written) over `count` commands already in the timers topic;
    from the first decoded message to the commit of the last batch (the group join and
    the producing are not the loop's work)."""
    topic = settings.topic(topics.TIMERS)
    producer = Producer(kafka_clients.producer_config(settings))
    for messages in batches(0, count, 10_000, tag, due):  # bounded: the RSS is the loop's
        kafka_clients.produce_and_confirm(
            producer,
            (Outgoing(topic, f"DEAL:{m.offset()}".encode(), m.value()) for m in messages),
            60,
        )
    first: list[float] = []
    last: list[float] = []
    done = [0]
    finished = threading.Event()
    decode, write = ingest.decode, ingest.write

    def timed_decode(value: bytes) -> Any:
        if not first:
            first.append(time.perf_counter())
        return decode(value)

    def timed_write(batch: TimerBatch) -> Any:
        result = write(batch)
        done[0] += len(batch.schedules)
        if not rss_marks and done[0] >= count // 10:
            rss_marks.append(rss_mb())
        if done[0] >= count:
            last.append(time.perf_counter())
            finished.set()
        return result

    ingest.decode = timed_decode  # type: ignore[method-assign]
    ingest.write = timed_write  # type: ignore[method-assign]
    stop = threading.Event()
    loop = ingest_loop(ingest, settings, url, metrics, stop, producer)
    runner = threading.Thread(target=loop.run, name="bench-ingest")
    runner.start()
    try:
        if not finished.wait(900):
            raise RuntimeError(f"ingest loop stored {done[0]:,} of {count:,} timers")
    finally:
        stop.set()
        runner.join(60)
    rss_marks.append(rss_mb())
    return count / (last[0] - first[0])


def copy_rate(url: str, count: int, size: int, tag: str) -> float:
    """The ceiling: a plain COPY of the same rows into a table with the same indexes."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE timers_copy (LIKE timers INCLUDING ALL)")
        elapsed = 0.0
        for messages in batches(0, count, size, tag, far_due):
            rows = []
            for m in messages:
                c = codec.decode_as(m.value(), TimerCommand)
                a = c.action
                assert a is not None and c.due_at is not None
                rows.append(
                    (
                        a.action_id,
                        a.item_key,
                        c.stage_entry_id,
                        a.rule_id,
                        a.rule_version,
                        a.event_id,
                        c.issued_at,
                        c.due_at,
                        m.value(),
                    )
                )
            started = time.perf_counter()  # the ceiling gets decoded rows for free
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(
                    f"COPY timers_copy {timer_store.COPY_COLUMNS} FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(timer_store.COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
            elapsed += time.perf_counter() - started
        return count / elapsed


def bare_fire_rate(
    url: str, burst: int, due: datetime, producer: Producer | None, topic: str
) -> float:
    """The floor: claim FOR UPDATE SKIP LOCKED (1,000, doubled after each full batch up to
    8,000, as the scheduler does), produce each one's stored action bytes and confirm
    them (the scheduler's producer settings), mark fired, commit. It does what firing
    must do and nothing else: no Execution records, no domain objects, no metrics."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO timers_copy SELECT timer_id || '-bare', item_key, stage_entry_id,"
            " rule_id, rule_version, event_id, issued_at, %s, action, 'pending'"
            " FROM timers WHERE timer_id LIKE 'burst-%%'",
            (due,),
        )
        conn.execute("VACUUM ANALYZE timers_copy")
        started, fired, limit = time.perf_counter(), 0, 1000
        while True:
            with conn.transaction():
                claimed = conn.execute(
                    "SELECT timer_id, item_key, action FROM timers_copy"
                    " WHERE status = 'pending' AND due_at <= %s"
                    " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED",
                    (due, limit),
                ).fetchall()
                if not claimed:
                    break
                ids = [timer_id for timer_id, _key, _action in claimed]
                if producer is not None:
                    kafka_clients.produce_and_confirm(
                        producer,
                        [Outgoing(topic, key.encode(), bytes(a)) for _t, key, a in claimed],
                    )
                conn.execute(
                    "UPDATE timers_copy SET status = 'fired', fired_at = now()"
                    " WHERE timer_id = ANY(%s)",
                    (ids,),
                )
                fired += len(ids)
                limit = min(2 * limit, 8000) if len(ids) == limit else 1000
        assert fired == burst, fired
        return burst / (time.perf_counter() - started)


def processes_fire_rate(
    settings: Settings, url: str, burst: int, processes: int
) -> tuple[float, float]:
    """Timers/s of `processes` real `crm-automation scheduler` processes on one table: the
    stored burst copied as new pending timers, due 1.5 s after every process is ready
    (start-up excluded), fired by them together (FOR UPDATE SKIP LOCKED). Checks each
    timer fired once: every copy marked fired, and the processes' fired counters add up
    to the burst. Returns the rate and the largest resident memory of a process."""
    tag = f"-p{processes}"
    env = {**stack_env(settings), "CRM_AUTOMATION_DATABASE_URL": url}
    ports = [free_port() for _ in range(processes)]
    with tempfile.TemporaryDirectory(prefix="scheduler-bench-") as tmp:
        running = start_processes(
            [CLI, "scheduler"],
            {**env, "CRM_AUTOMATION_LOG_JSON": "true"},
            Path(tmp),
            "scheduler",
            {"CRM_AUTOMATION_SCHEDULER_METRICS_PORT": ports},
        )
        try:
            for process, port in zip(running, ports, strict=True):
                wait_ready(process, port)
            with psycopg.connect(url, autocommit=True) as conn:
                due = conn.execute("SELECT now() + interval '1.5 seconds'").fetchone()[0]  # type: ignore[index]
                conn.execute(
                    "INSERT INTO timers (timer_id, item_key, stage_entry_id, rule_id,"
                    " rule_version, event_id, issued_at, due_at, action, status)"
                    " SELECT timer_id || %s, item_key, stage_entry_id, rule_id, rule_version,"
                    " event_id, issued_at, %s, action, 'pending'"
                    " FROM timers WHERE timer_id LIKE 'burst-%%' AND timer_id NOT LIKE '%%-p%%'",
                    (tag, due),
                )
                pattern = f"burst-%{tag}"
                while True:
                    row = conn.execute(
                        "SELECT count(*) FROM timers WHERE timer_id LIKE %s AND status = 'fired'",
                        (pattern,),
                    ).fetchone()
                    if row is not None and row[0] >= burst:
                        break
                    for process in running:
                        assert process.poll() is None, "a scheduler process exited"
                    time.sleep(0.1)
                row = conn.execute(
                    "SELECT count(*) FROM timers WHERE timer_id LIKE %s", (pattern,)
                ).fetchone()
            measured = [sample_sums(metric_families(port)) for port in ports]
        finally:
            for process in running:
                stop_process(process)
        # Due -> the last batch committed (its log line; `fired_at` is its claim).
        seconds = last_fired_at(list(Path(tmp).glob("scheduler-*/scheduler.log"))) - due
    assert row is not None and row[0] == burst, row
    fired = sum(m.get("crm_automation_timers_fired_total", 0.0) for m in measured)
    assert fired == burst, f"{fired} fired for {burst} timers"
    rss_mb = max(m.get("process_resident_memory_bytes", 0.0) for m in measured) / 2**20
    return burst / seconds.total_seconds(), rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 timers instead of 1M")
    parser.add_argument("--timers", type=int)
    parser.add_argument("--burst", type=int, help="timers due at once (default: 10%%)")
    parser.add_argument("--batch", type=int, default=None, help="ingest batch size")
    parser.add_argument(
        "--fire-loops", type=int, default=1, help="fire loops sharing the table (SKIP LOCKED)"
    )
    args = parser.parse_args()
    total = args.timers or (50_000 if args.quick else 1_000_000)
    burst = min(args.burst or total // 10, total - 1)
    with stack_settings() as settings:
        size = args.batch or settings.batch_size
        assert settings.database_url is not None
        server_url = settings.database_url.get_secret_value()
        name = f"bench_sched_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
        try:
            result = run(settings, url, total, burst, size, args.fire_loops)
        finally:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    report(result, args)


def run(
    settings: Settings, url: str, total: int, burst: int, size: int, fire_loops: int = 1
) -> dict[str, Any]:
    db.migrate(url)
    metrics = SchedulerMetrics.create(CollectorRegistry())
    clock = SystemClock()
    publisher: Any = DroppingPublisher()
    kafka = settings.kafka_bootstrap_servers is not None
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    if kafka:
        bench_settings = settings.model_copy(update={"topic_prefix": prefix, "partitions": 6})
        topics.create_topics(
            AdminClient(kafka_clients.admin_config(bench_settings)), bench_settings
        )
        publisher = KafkaPublisher(Producer(kafka_clients.producer_config(settings)))

    def connect() -> psycopg.Connection:
        return psycopg.connect(url, autocommit=True)

    actions_topic = f"{prefix}{topics.ACTIONS}"
    confirmed: list[tuple[datetime, int]] = []
    fire = FireLoop(
        connect,
        Confirmed(publisher, actions_topic, confirmed),
        clock,
        metrics,
        actions_topic=actions_topic,
        executions_topic=f"{prefix}{topics.EXECUTIONS}",
        batch_size=1000,
    )
    ingest = Ingest(
        connect,
        publisher,
        clock,
        metrics,
        executions_topic=f"{prefix}{topics.EXECUTIONS}",
        on_due=fire.notify_due,
    )
    out: dict[str, Any] = {
        "timers": total,
        "burst": burst,
        "ingest_batch": size,
        "publisher": "kafka" if kafka else "none (records dropped)",
        "fire_loops": fire_loops,
    }
    rss_marks: list[float] = []
    far = total - burst
    print(f"ingesting {far:,} far-future timers in batches of {size} ...", flush=True)
    loop_settings = settings.model_copy(update={"topic_prefix": prefix, "batch_size": size})
    loop_ingest = Ingest(
        connect,
        publisher,
        clock,
        metrics,
        executions_topic=f"{prefix}{topics.EXECUTIONS}",
        group=f"bench-ingest-{uuid.uuid4().hex[:6]}",
    )
    out["ingest_rate"] = ingest_loop_rate(
        loop_settings, loop_ingest, metrics, far, "far", far_due, rss_marks, url
    )
    loop_ingest.close()
    out["rss_mb_after_10pct"], out["rss_mb_after_ingest"] = rss_marks[0], rss_marks[-1]
    print("plain COPY of the same rows ...", flush=True)
    out["copy_rate"] = copy_rate(url, far, size, "far")
    out["ingest_vs_copy"] = out["ingest_rate"] / out["copy_rate"]

    # The burst: due together, a few seconds after it is stored (estimated from the rate).
    due = datetime.now(UTC) + timedelta(seconds=3 + 1.5 * burst / out["ingest_rate"])
    print(f"ingesting {burst:,} timers due at once at {due.isoformat()} ...", flush=True)
    ingest_rate(ingest, burst, size, "burst", lambda _i: due)
    with connect() as conn:
        conn.execute("VACUUM ANALYZE timers")
        sizes = conn.execute(
            "SELECT pg_total_relation_size('timers'), pg_relation_size('timers'),"
            " pg_indexes_size('timers'), count(*) FROM timers WHERE status = 'pending'"
        ).fetchone()
    assert sizes is not None
    out["table_total_mb"], out["table_heap_mb"], out["indexes_mb"] = (
        sizes[0] / 2**20,
        sizes[1] / 2**20,
        sizes[2] / 2**20,
    )
    out["pending_before_burst"] = sizes[3]
    stop = threading.Event()
    # More loops, as more scheduler processes would run: each its own connection and
    # producer, claiming with SKIP LOCKED.
    fires = [fire] + [
        FireLoop(
            connect,
            Confirmed(
                KafkaPublisher(Producer(kafka_clients.producer_config(settings)))
                if kafka
                else publisher,
                actions_topic,
                confirmed,
            ),
            clock,
            metrics,
            actions_topic=actions_topic,
            executions_topic=f"{prefix}{topics.EXECUTIONS}",
            batch_size=1000,
        )
        for _ in range(fire_loops - 1)
    ]
    runners = [threading.Thread(target=f.run, args=(stop,)) for f in fires]
    for runner in runners:
        runner.start()
    with connect() as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM timers WHERE status = 'fired'").fetchone()
            if row is not None and row[0] >= burst:
                break
            time.sleep(0.2)
        stop.set()
        for f, runner in zip(fires, runners, strict=True):
            f.interrupt()
            runner.join()
        row = conn.execute("SELECT count(*) FROM timers WHERE status = 'fired'").fetchone()
    assert row is not None and row[0] == burst, row
    # Every fired timer of the burst shares its due time: its lag is its batch's.
    lags = [((at - due).total_seconds(), actions) for at, actions in confirmed]
    assert sum(actions for _lag, actions in lags) == burst, lags
    out["fire_rate"] = burst / max(lag for lag, _actions in lags)
    each = [lag for lag, actions in lags for _ in range(actions)]
    out["lag_p50_s"], out["lag_p99_s"] = percentile(each, 50), percentile(each, 99)
    out["rss_mb_peak"] = rss_mb()
    print("floor: claim, produce the stored actions, confirm, mark, commit ...", flush=True)
    out["bare_fire_rate"] = bare_fire_rate(
        url,
        burst,
        due,
        Producer(kafka_clients.producer_config(settings)) if kafka else None,
        actions_topic,
    )
    out["fire_vs_bare"] = out["fire_rate"] / out["bare_fire_rate"]
    for f in fires:
        f.close()
    if kafka:
        # The same burst again, copied, through real scheduler processes: one, then two.
        process_settings = settings.model_copy(update={"topic_prefix": prefix})
        for n in (1, 2):
            print(f"{n} scheduler process(es) firing a copy of the burst ...", flush=True)
            rate, rss = processes_fire_rate(process_settings, url, burst, n)
            out[f"processes_{n}_fire_rate"], out[f"processes_{n}_rss_mb"] = rate, rss
        out["two_vs_one_process"] = out["processes_2_fire_rate"] / out["processes_1_fire_rate"]
        out["cpu_count"] = os.cpu_count()
    ingest.close()
    if kafka:
        publisher.close()
    return out


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    rows = [
        ("pending timers loaded", f"{r['timers']:,} (burst {r['burst']:,})", ""),
        (
            "ingest (scheduler path)",
            f"{r['ingest_rate']:,.0f} timers/s",
            f"{r['ingest_vs_copy']:.2f} x plain COPY ({r['copy_rate']:,.0f}/s)",
        ),
        (
            "firing, burst due at once",
            f"{r['fire_rate']:,.0f} timers/s",
            f"{r['fire_vs_bare']:.2f} x floor loop ({r['bare_fire_rate']:,.0f}/s)",
        ),
        (
            "firing lag p50 / p99",
            f"{r['lag_p50_s']:.2f} s / {r['lag_p99_s']:.2f} s",
            "due -> confirmed (burst drains)",
        ),
        (
            "peak RSS",
            f"{r['rss_mb_peak']:.0f} MB",
            f"{r['rss_mb_after_10pct']:.0f} MB at 10% ingest, "
            f"{r['rss_mb_after_ingest']:.0f} at 100%",
        ),
        (
            "timers table + indexes",
            f"{r['table_total_mb']:.0f} MB",
            f"heap {r['table_heap_mb']:.0f} MB, indexes {r['indexes_mb']:.0f} MB",
        ),
        ("publisher", r["publisher"], f"ingest batch {r['ingest_batch']}"),
    ]
    if "two_vs_one_process" in r:
        rows[3:3] = [
            (
                "1 scheduler process",
                f"{r['processes_1_fire_rate']:,.0f} timers/s",
                f"a copy of the burst; its RSS {r['processes_1_rss_mb']:.0f} MB",
            ),
            (
                "2 scheduler processes",
                f"{r['processes_2_fire_rate']:,.0f} timers/s",
                f"{r['two_vs_one_process']:.2f} x one process ({r['cpu_count']} CPUs here);"
                f" largest RSS {r['processes_2_rss_mb']:.0f} MB",
            ),
        ]
    for label, value, note in rows:
        print(f"{label:<28} {value:<26} {note}")
    mode = "quick" if args.quick else "full"
    path = write_result(f"scheduler-{mode}", r, {k: str(v) for k, v in vars(args).items()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
