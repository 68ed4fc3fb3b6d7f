"""Sinks benchmark: Postgres sink rows/s vs plain COPY, calendar sink events/s vs plain PUTs.

    .venv/bin/python bench/sink_bench.py [--quick] [--actions N] [--sizes 200,1000]
                                         [--rounds R] [--threads T] [--skip-calendar]
                                         [--processes N]

Starts a local stack (Kafka, Postgres, Radicale) under a temporary home, or uses the
services configured by CRM_AUTOMATION_* variables (all three must be set). Prints a table
and writes bench/results/sinks[-quick]-<UTC stamp>.json.

Postgres: N mixed actions (copied deals, leads, activities, completions) and one
execution record per action are produced to fresh `automation.actions` and
`automation.executions` topics in one Kafka transaction, so the sink (the real code path,
`sinks.postgres.process.run`, already in its group after a warm-up) sees all of them at
once. Its rate runs from the transaction's commit to the Postgres commit that stores the
last offset. The ceiling, in the same run: the same rows (decoded for free) COPYed in
binary, batch by batch, one transaction per batch with the batch's offsets, straight
into the same tables of a second fresh database. Ratio = sink rows/s / COPY rows/s
(target >= 0.5). A second
reference: a plain loop that consumes the same records from Kafka, decodes them, builds
the same rows and COPYs them (the least any Python sink must do). Each reference runs
before and after the sink; their mean is used.

With --processes N, also 1 and N real `crm-automation sink postgres` processes in one
consumer group on a workload of the same size, alternated (1, N, 1, N), each timed as the
sink above once every process holds partitions: how far a second process carries the sink.

Calendar: see bench/calendar_bench.py; per calendar size, fresh calendars filled to that
size by plain concurrent PUTs (httpx, `--threads`) and through the calendar sink.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import calendar_bench
import psycopg
from common import CLI, stack_env, start_processes, stop_process, wait_ready
from confluent_kafka import Consumer, ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from automation_core.model import (
    Action,
    ActionMode,
    Client,
    Company,
    CompleteActivities,
    Contact,
    CopyDeal,
    CreateLead,
    Execution,
    ExecutionStatus,
    Item,
    PlanActivity,
)
from crm_automation.stack import Stack
from crm_automation.stack.processes import free_port
from runtime import codec, db, kafka_clients, offsets, topics
from runtime.consume import poll_batch
from runtime.settings import Settings
from sinks.metrics import SinkMetrics
from sinks.postgres import process as postgres_process
from sinks.postgres.rows import (
    ACTIVITY_COLUMNS,
    COMPLETION_COLUMNS,
    DEAL_COLUMNS,
    EXECUTION_COLUMNS,
    LEAD_COLUMNS,
    OUTBOX_COLUMNS,
    Rows,
)

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TARGET_RATIO = 0.5


# --- workload ---------------------------------------------------------------------------


def mixed_actions(n: int, tag: str) -> list[Action]:
    """Per item in turn: a copied deal, a lead, an activity, its stage's completion."""
    company = Company("c-1", "Müller GmbH")
    contacts = (Contact("p-1", "Anna", email="anna@example.com"), Contact("p-2", "Ben"))
    out = []
    for i in range(n):
        item_key, entry = f"DEAL:{tag}-{i // 4}", f"evt-{tag}-{i // 4}"
        kind = i % 4
        payload: Any
        if kind == 0:
            item = Item(
                title=f"Maintenance {i}",
                responsible_id="u-7",
                amount=Decimal("12000.00"),
                currency="EUR",
                company=company,
                contacts=contacts,
                fields={"UF_CONTRACT_NO": f"MV-{i}", "UF_REGION": "west"},
            )
            payload = CopyDeal(f"deal-{tag}-{i}", "installation", "NEW", item, item_key, 1)
        elif kind == 1:
            payload = CreateLead(f"lead-{tag}-{i}", f"Renewal {i}", "u-7", company, contacts)
        elif kind == 2:
            payload = PlanActivity(
                activity_id=f"act-{tag}-{i}",
                subject=f"Call the client {i}",
                description="Discuss the maintenance contract and the installation date",
                deadline=T0 + timedelta(days=1, minutes=i),
                duration_minutes=30,
                responsible_id="u-7",
                stage_id="APPROVAL",
                color="yellow",
                add_to_calendar=True,
                clients=(Client("p-1", "contact", "Anna", "anna@example.com"),),
                invitee_ids=("u-12",),
                link="https://meet.example.com/x",
                complete_on_stage_exit=True,
            )
        else:
            payload = CompleteActivities("APPROVAL", T0 + timedelta(hours=2))
        out.append(
            Action(
                action_id=f"{tag}-{i:08d}",
                rule_id=f"rule-{i % 50}",
                rule_version="v1",
                item_key=item_key,
                event_id=entry,
                stage_entry_id=entry,
                occurred_at=T0,
                mode=ActionMode.IMMEDIATE,
                payload=payload,
            )
        )
    return out


def execution_of(action: Action) -> Execution:
    return Execution(
        rule_id=action.rule_id,
        item_key=action.item_key,
        event_id=action.event_id,
        status=ExecutionStatus.FIRED,
        recorded_at=T0,
        action_id=action.action_id,
        rule_version=action.rule_version,
    )


# --- Postgres sink ----------------------------------------------------------------------


def fresh_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    db.migrate(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def committed_messages(conn: psycopg.Connection, group: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = %s",
        (group,),
    ).fetchone()
    return int(row[0]) if row else 0


def table_rows(conn: psycopg.Connection) -> int:
    tables = ("leads", "deals", "activities", "activity_completions", "executions", "outbox")
    query = " + ".join(f"(SELECT count(*) FROM {t})" for t in tables)
    row = conn.execute(f"SELECT {query}").fetchone()  # noqa: S608 - constant table names
    return int(row[0]) if row else 0


def produce_all(s: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    """One Kafka transaction: a read_committed consumer sees all records at once."""
    producer = Producer(kafka_clients.producer_config(s, **{"transactional.id": uuid.uuid4().hex}))
    producer.init_transactions(30)
    producer.begin_transaction()
    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
    producer.commit_transaction(120)


def postgres_sink_rate(s: Settings, server_url: str, n: int) -> dict[str, Any]:
    """The sink against the two references, each run before and after it (mean of both):
    load on a shared 2-core machine drifts, and the broker warms up."""
    actions = mixed_actions(n, uuid.uuid4().hex[:6])
    reference = s.model_copy(update={"topic_prefix": f"bench-ref-{uuid.uuid4().hex[:6]}."})
    topics.create_topics(AdminClient(kafka_clients.admin_config(reference)), reference)
    produce_all(reference, records(reference, actions))
    messages = 2 * n
    copies = [plain_copy_rate(server_url, s, actions)]
    loops = [plain_loop_rate(server_url, reference, messages)]
    sink = sink_rate(s, server_url, actions)
    copies.append(plain_copy_rate(server_url, s, actions))
    loops.append(plain_loop_rate(server_url, reference, messages))
    copy_rate = statistics.mean(c["rows"] / c["seconds"] for c in copies)
    loop_rate = statistics.mean(c["rows"] / c["seconds"] for c in loops)
    rate = sink["rows"] / sink["seconds"]
    return {
        "actions": n,
        "messages": messages,
        "rows": sink["rows"],
        "batch_size": s.batch_size,
        "partitions": s.partitions,
        "sink_seconds": round(sink["seconds"], 3),
        "sink_rows_per_s": round(rate),
        "copy_rows_per_s_runs": [round(c["rows"] / c["seconds"]) for c in copies],
        "copy_rows_per_s": round(copy_rate),
        "ratio_sink_to_copy": round(rate / copy_rate, 3),
        "loop_rows_per_s_runs": [round(c["rows"] / c["seconds"]) for c in loops],
        "loop_rows_per_s": round(loop_rate),
        "ratio_sink_to_loop": round(rate / loop_rate, 3),
    }


def sink_rate(s: Settings, server_url: str, actions: list[Action]) -> dict[str, Any]:
    """The real sink (`postgres_process.run`), from the Kafka commit of the prepared
    topics to the Postgres commit of the last offset."""
    url = fresh_database(server_url, "bench_sink")
    s = s.model_copy(
        update={"database_url": SecretStr(url), "topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."}
    )
    topics.create_topics(AdminClient(kafka_clients.admin_config(s)), s)
    stop = threading.Event()
    sink = threading.Thread(
        target=postgres_process.run, args=(s, SinkMetrics.create(CollectorRegistry()), stop)
    )
    try:
        sink.start()
        return timed_write(s, url, actions, warmup=8)
    finally:
        stop.set()
        sink.join(60)
        drop_database(server_url, url)


def timed_write(s: Settings, url: str, actions: list[Action], warmup: int) -> dict[str, Any]:
    """Through the sink(s) already running on `s`: `warmup` actions written first (the
    group joined, connections open), then `actions`, timed from the Kafka commit of their
    topics to the Postgres commit of the last offset."""
    group = s.group(postgres_process.GROUP)  # prefixed since 9782395
    with psycopg.connect(url, autocommit=True) as watch:
        warming = records(s, mixed_actions(warmup, "warmup"))
        produce_all(s, warming)
        wait_until(lambda: committed_messages(watch, group) >= len(warming), 60, "the warm-up")
        before_rows = table_rows(watch)

        prepared = records(s, actions)
        produce_all(s, prepared)
        started = time.perf_counter()
        target = len(warming) + len(prepared)
        wait_until(lambda: committed_messages(watch, group) >= target, 600, "the last commit", 0.01)
        elapsed = time.perf_counter() - started
        return {"rows": table_rows(watch) - before_rows, "seconds": elapsed}


def processes_sink_rate(
    s: Settings, server_url: str, actions: list[Action], processes: int
) -> dict[str, Any]:
    """`processes` real `crm-automation sink postgres` processes in one consumer group (the
    partitions split between them), timed as `sink_rate` times the sink in-process: from
    the Kafka commit of the prepared topics to the Postgres commit of the last offset.
    Start-up and the group's rebalance are excluded: the timed records are produced once
    every process holds partitions and a warm-up went through."""
    url = fresh_database(server_url, "bench_sinks")
    s = s.model_copy(
        update={"database_url": SecretStr(url), "topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."}
    )
    admin = AdminClient(kafka_clients.admin_config(s))
    topics.create_topics(admin, s)
    group = s.group(postgres_process.GROUP)
    ports = [free_port() for _ in range(processes)]
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        running = start_processes(
            [CLI, "sink", "postgres"],
            stack_env(s),
            Path(tmp),
            "sink",
            {"CRM_AUTOMATION_SINK_POSTGRES_METRICS_PORT": ports},
        )
        try:
            for process, port in zip(running, ports, strict=True):
                wait_ready(process, port)
            wait_until(lambda: members_with_partitions(admin, group) == processes, 60, "the group")
            timed = timed_write(s, url, actions, warmup=8 * processes)
            assert members_with_partitions(admin, group) == processes, "the group changed"
        finally:
            for process in running:
                stop_process(process)
            drop_database(server_url, url)
    return timed


def scale_out(s: Settings, server_url: str, n: int, processes: int) -> dict[str, Any]:
    """Rows/s of one and of `processes` sink processes on the same workload, alternated
    (one, many, one, many): the machine's speed drifts between runs."""
    actions = mixed_actions(n, uuid.uuid4().hex[:6])
    runs: dict[int, list[float]] = {1: [], processes: []}
    for count in (1, processes, 1, processes):
        run = processes_sink_rate(s, server_url, actions, count)
        runs[count].append(run["rows"] / run["seconds"])
    one, many = (statistics.mean(runs[c]) for c in (1, processes))
    return {
        "count": processes,
        "one_rows_per_s_runs": [round(r) for r in runs[1]],
        "many_rows_per_s_runs": [round(r) for r in runs[processes]],
        "ratio_many_to_one": round(many / one, 3),
        "cpu_count": os.cpu_count(),
    }


def members_with_partitions(admin: AdminClient, group: str) -> int:
    """How many members of `group` hold partitions, once the group is stable (else 0)."""
    description = admin.describe_consumer_groups([group])[group].result(10)
    if description.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for m in description.members if m.assignment.topic_partitions)


def records(s: Settings, actions: list[Action]) -> list[tuple[str, bytes, bytes]]:
    out = []
    for action in actions:
        key = action.item_key.encode()
        out.append((s.topic(topics.ACTIONS), key, codec.encode(action)))
        out.append((s.topic(topics.EXECUTIONS), key, codec.encode(execution_of(action))))
    return out


_COPY_TARGETS = (
    ("leads", "leads", LEAD_COLUMNS),
    ("deals", "deals", DEAL_COLUMNS),
    ("activities", "activities", ACTIVITY_COLUMNS),
    ("completions", "activity_completions", COMPLETION_COLUMNS),
    ("executions", "executions", EXECUTION_COLUMNS),
    ("outbox", "outbox", OUTBOX_COLUMNS),
)


def plain_copy_rate(server_url: str, s: Settings, actions: list[Action]) -> dict[str, Any]:
    """The floor: the sink's rows, decoded for free, binary-COPYed batch by batch, each
    batch's transaction also storing its offsets (as the sink's does; 6 partitions)."""
    url = fresh_database(server_url, "bench_copy")
    try:
        batches = []
        for first in range(0, len(actions), s.batch_size // 2):  # a batch: actions + executions
            rows = Rows(announce_topic=s.topic(topics.STAGE_CHANGES))
            chunk = actions[first : first + s.batch_size // 2]
            rows.extend(chunk, [execution_of(a) for a in chunk])
            batches.append(rows)
        with psycopg.connect(url) as conn:
            types = column_types(conn)
            elapsed, count = 0.0, 0
            for number, rows in enumerate(batches):
                next_offsets = {
                    (s.topic(t), p): (number + 1) * s.batch_size
                    for t in (topics.ACTIONS, topics.EXECUTIONS)
                    for p in range(6)
                }
                started = time.perf_counter()
                count += copy_rows(conn, types, rows, next_offsets)
                elapsed += time.perf_counter() - started
        return {"rows": count, "seconds": elapsed}
    finally:
        drop_database(server_url, url)


def plain_loop_rate(server_url: str, s: Settings, messages: int) -> dict[str, Any]:
    """The least any Python sink must do: consume the same topics in batches, decode, build
    the same rows and COPY them straight into the tables with the batch's offsets (no
    staging, conflicts or relay), one transaction per batch."""
    url = fresh_database(server_url, "bench_loop")
    consumer = Consumer(kafka_clients.consumer_config(s, f"bench-loop-{uuid.uuid4().hex[:6]}"))
    consumer.subscribe([s.topic(topics.ACTIONS), s.topic(topics.EXECUTIONS)])
    try:
        with psycopg.connect(url) as conn:
            types = column_types(conn)
            seen, count, started = 0, 0, 0.0
            while seen < messages:
                batch = poll_batch(consumer, s.batch_size, 1.0)
                if not batch:
                    continue
                if not started:
                    started = time.perf_counter()  # the group join is not the loop's work
                seen += len(batch)
                rows = Rows(announce_topic=s.topic(topics.STAGE_CHANGES))
                next_offsets = {
                    (m.topic() or "", m.partition() or 0): (m.offset() or 0) + 1 for m in batch
                }
                for message in batch:
                    record = codec.decode(message.value() or b"")
                    if isinstance(record, Action):
                        rows.add_action(record)
                    elif isinstance(record, Execution):
                        rows.add_execution(record)
                count += copy_rows(conn, types, rows, next_offsets)
            return {"rows": count, "seconds": time.perf_counter() - started}
    finally:
        consumer.close()
        drop_database(server_url, url)


def copy_rows(
    conn: psycopg.Connection,
    types: dict[tuple[str, tuple[str, ...]], list[str]],
    rows: Rows,
    next_offsets: dict[tuple[str, int], int],
) -> int:
    count = 0
    with conn.transaction(), conn.cursor() as cur:
        offsets.store_offsets(cur, "bench-floor", next_offsets)
        for attr, table, columns in _COPY_TARGETS:
            batch = getattr(rows, attr)
            if not batch:
                continue
            statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
            with cur.copy(statement.encode()) as copy:
                copy.set_types(types[table, columns])
                for row in batch:
                    copy.write_row(row)
            count += len(batch)
    return count


def column_types(conn: psycopg.Connection) -> dict[tuple[str, tuple[str, ...]], list[str]]:
    found: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for _attr, table, columns in _COPY_TARGETS:
        by_name: dict[str, str] = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0",
                (table,),
            ).fetchall()
        )
        found[table, columns] = [by_name[c] for c in columns]
    conn.commit()
    return found


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not done within {timeout}s: {what}")
        time.sleep(interval)


# --- running ----------------------------------------------------------------------------


@contextlib.contextmanager
def stack_settings() -> Iterator[Settings]:
    """The configured services if all three are set, else a local stack of our own."""
    configured = Settings()
    if configured.kafka_bootstrap_servers and configured.database_url and configured.caldav_url:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        stack = Stack(configured.model_copy(update={"home": Path(tmp) / "stack"}))
        try:
            print("starting the local stack ...", flush=True)
            stack.up()
            yield stack.resolved_settings()
        finally:
            stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (under ~40 s)")
    parser.add_argument("--actions", type=int, help="Postgres sink actions (+1 execution each)")
    parser.add_argument("--sizes", help="calendar sizes, comma-separated")
    parser.add_argument("--rounds", type=int, help="calendar rounds per size")
    parser.add_argument("--threads", type=int, default=8, help="calendar PUT concurrency")
    parser.add_argument("--skip-calendar", action="store_true")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also time 1 and N real Postgres sink processes in one group (N >= 2)",
    )
    args = parser.parse_args()
    n = args.actions or (5_000 if args.quick else 100_000)
    sizes = [int(x) for x in (args.sizes or ("50,100" if args.quick else "200,1000")).split(",")]
    rounds = args.rounds or (1 if args.quick else 3)

    started = time.perf_counter()
    with stack_settings() as base:
        assert base.database_url is not None and base.caldav_url is not None
        server_url = base.database_url.get_secret_value()
        print(f"postgres sink: {n:,} actions + {n:,} executions ...", flush=True)
        pg = postgres_sink_rate(base, server_url, n)
        if args.processes >= 2:
            print(f"postgres sink: 1 and {args.processes} processes in one group ...", flush=True)
            pg["processes"] = scale_out(base, server_url, n, args.processes)
        calendar: list[dict[str, Any]] = []
        if not args.skip_calendar:
            print(f"calendar sink: sizes {sizes}, {rounds} round(s) ...", flush=True)
            calendar = calendar_bench.measure(base, base.caldav_url, sizes, rounds, args.threads)
    result = {
        "mode": "quick" if args.quick else "full",
        "postgres": pg,
        "calendar": calendar,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    report(result, args)


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    pg = r["postgres"]
    print(
        f"\nPostgres sink, {pg['actions']:,} mixed actions + executions "
        f"({pg['rows']:,} rows incl. outbox), batch {pg['batch_size']}, "
        f"{pg['partitions']} partitions"
    )
    print(f"{'':36}{'rows/s':>10}   runs (before, after)")
    print(f"{'sink (Kafka -> Postgres commit)':36}{pg['sink_rows_per_s']:>10,}")
    print(f"{'plain binary COPY, same rows':36}{pg['copy_rows_per_s']:>10,}", end="")
    print(f"   {pg['copy_rows_per_s_runs']}")
    print(f"{'plain loop (consume, decode, COPY)':36}{pg['loop_rows_per_s']:>10,}", end="")
    print(f"   {pg['loop_rows_per_s_runs']}")
    verdict = "met" if pg["ratio_sink_to_copy"] >= TARGET_RATIO else "MISSED"
    print(f"ratio sink/COPY {pg['ratio_sink_to_copy']:.2f} (target {TARGET_RATIO}: {verdict})")
    print(f"ratio sink/plain loop {pg['ratio_sink_to_loop']:.2f}")
    scaled = pg.get("processes")
    if scaled:
        print(
            f"sink processes in one group ({scaled['cpu_count']} CPUs): 1 process"
            f" {scaled['one_rows_per_s_runs']} rows/s, {scaled['count']} processes"
            f" {scaled['many_rows_per_s_runs']} rows/s: {scaled['ratio_many_to_one']:.2f} x"
        )
    if r["calendar"]:
        print(f"\nCalendar sink vs plain concurrent PUTs ({args.threads} threads), same Radicale")
        print(f"{'calendar size':>14}{'PUTs/s':>10}{'sink ev/s':>11}{'ratio':>8}")
        for row in r["calendar"]:
            print(
                f"{row['calendar_size']:>14}{row['plain_puts_per_s']:>10.1f}"
                f"{row['sink_events_per_s']:>11.1f}{row['ratio_sink_to_plain']:>8.2f}"
            )
    print(f"\nwall time {r['wall_seconds']} s")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"sinks-{r['mode']}-{stamp}.json"
    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }
    path.write_text(json.dumps({**r, "args": vars(args), "machine": machine}, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
