"""Calendar sink benchmark: events/s through the sink vs plain concurrent PUTs, same Radicale.

    .venv/bin/python bench/calendar_bench.py [--sizes 200,1000] [--rounds 3] [--threads 8]

Starts a local stack (Kafka, Postgres, Radicale) under a temporary home; bench/sink_bench.py
runs `measure` on its own stack. For each size, each round fills two fresh calendars to
that many events: one with plain `PUT If-None-Match: *` from `--threads` threads (the
ceiling), one through the calendar sink (Kafka → VEVENT → PUT → event log → offset
commit), timed from producing the actions until the sink has written them all.
Radicale's PUT rate falls as a calendar grows, so both sides use the same final size.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from automation_core.model import Action, ActionMode, PlanActivity
from crm_automation.stack import Stack
from runtime import codec, db, kafka_clients, topics
from runtime.settings import Settings
from sinks.calendar import events as ev
from sinks.calendar import process as calendar_process
from sinks.metrics import SinkMetrics

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def actions_for(user: str, count: int) -> list[Action]:
    out = []
    for i in range(count):
        action_id = uuid.uuid4().hex
        out.append(
            Action(
                action_id=action_id,
                rule_id="call-client",
                rule_version="v1",
                item_key=f"DEAL:{user}-{i}",
                event_id=f"evt-{i}",
                stage_entry_id=f"evt-{i}",
                occurred_at=T0,
                mode=ActionMode.IMMEDIATE,
                payload=PlanActivity(
                    activity_id=f"activity-{action_id}",
                    subject=f"Call the client {i}",
                    description="Discuss the contract",
                    deadline=T0 + timedelta(hours=i),
                    duration_minutes=30,
                    responsible_id=user,
                    stage_id="APPROVAL",
                    color="yellow",
                    add_to_calendar=True,
                    invitee_ids=("u-12",),
                    link="https://meet.example.com/x",
                ),
            )
        )
    return out


def plain_puts(caldav_url: str, user: str, actions: list[Action], threads: int) -> float:
    """Seconds to PUT the same VEVENTs directly, `threads` at a time."""
    base = caldav_url.rstrip("/")
    bodies = [
        (a.action_id, ev.to_ical(ev.build_calendar(a, a.payload, ev.Addressing())))
        for a in actions
        if isinstance(a.payload, PlanActivity)
    ]
    with httpx.Client(
        auth=(user, ""), timeout=30, limits=httpx.Limits(max_connections=threads)
    ) as client:
        client.request("MKCALENDAR", f"{base}/{user}/calendar/").raise_for_status()
        started = time.perf_counter()

        def put(item: tuple[str, bytes]) -> None:
            response = client.put(
                f"{base}/{user}/calendar/{ev.resource_name(item[0])}",
                content=item[1],
                headers={"If-None-Match": "*", "Content-Type": "text/calendar"},
            )
            assert response.status_code == 201, response.status_code

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, bodies))
        return time.perf_counter() - started


def through_sink(
    settings: Settings,
    producer: Producer,
    registry: CollectorRegistry,
    actions: list[Action],
    done_before: float,
) -> float:
    """Seconds from producing `actions` until the running sink has written them all."""
    started = time.perf_counter()
    for action in actions:
        producer.produce(
            settings.topic(topics.ACTIONS), key=action.item_key.encode(), value=codec.encode(action)
        )
    kafka_clients.flush_or_raise(producer)
    target = done_before + len(actions)
    while written(registry) < target:
        time.sleep(0.005)
    return time.perf_counter() - started


def written(registry: CollectorRegistry) -> float:
    labels = {"sink": "calendar", "kind": "event", "outcome": "created"}
    return registry.get_sample_value("crm_automation_sink_writes_total", labels) or 0.0


def measure(
    base: Settings, caldav_url: str, sizes: list[int], rounds: int, threads: int
) -> list[dict[str, Any]]:
    """Per calendar size: median plain-PUT and sink rates over `rounds` fresh calendars."""
    assert base.database_url is not None
    server_url = base.database_url.get_secret_value()
    name = f"calbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    db.migrate(url)
    settings = base.model_copy(
        update={
            "database_url": SecretStr(url),
            "caldav_url": caldav_url,
            "topic_prefix": f"bench{uuid.uuid4().hex[:6]}.",
            "caldav_concurrency": threads,
            "sink_calendar_metrics_port": 0,
        }
    )
    topics.create_topics(AdminClient(kafka_clients.admin_config(settings)), settings)
    producer = Producer(kafka_clients.producer_config(settings))
    registry, stop = CollectorRegistry(), threading.Event()
    sink = threading.Thread(
        target=calendar_process.run, args=(settings, SinkMetrics.create(registry), stop)
    )
    sink.start()
    results = []
    try:
        # Warm-up: the consumer joins its group and the connections open before timing.
        through_sink(settings, producer, registry, actions_for("warmup", 5), written(registry))
        for size in sizes:
            rows = []
            for round_no in range(rounds):
                tag = f"{size}-{round_no}-{uuid.uuid4().hex[:6]}"
                put_s = plain_puts(caldav_url, f"put-{tag}", actions_for("put", size), threads)
                sink_s = through_sink(
                    settings,
                    producer,
                    registry,
                    actions_for(f"sink-{tag}", size),
                    written(registry),
                )
                rows.append((size / put_s, size / sink_s))
            plain = statistics.median(r[0] for r in rows)
            sinked = statistics.median(r[1] for r in rows)
            results.append(
                {
                    "calendar_size": size,
                    "threads": threads,
                    "rounds": rounds,
                    "plain_puts_per_s": round(plain, 1),
                    "sink_events_per_s": round(sinked, 1),
                    "ratio_sink_to_plain": round(sinked / plain, 2),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        stop.set()
        sink.join(30)
        producer.flush(10)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="200,1000", help="calendar sizes, comma-separated")
    parser.add_argument("--events", type=int, help="one calendar size (overrides --sizes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="calendar-bench-"))
    stack = Stack(Settings(home=home))
    stack.up()
    try:
        sizes = [args.events] if args.events else [int(x) for x in args.sizes.split(",")]
        results = measure(
            stack.resolved_settings(), stack.caldav_url, sizes, args.rounds, args.threads
        )
        print(
            json.dumps(
                {
                    "machine": f"{platform.machine()} {platform.python_version()}",
                    "results": results,
                },
                indent=2,
            )
        )
    finally:
        stack.down()


if __name__ == "__main__":
    main()
