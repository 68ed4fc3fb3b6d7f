"""End-to-end latency: `occurred_at` of a stage change to its copied deal committed in Postgres.

    .venv/bin/python bench/latency_bench.py [--quick] [--rates 500,2000] [--seconds S]
                                            [--warmup S]

Full: 500 and 2,000 events/s for 30 s each after a 20 s warm-up; --quick: 4 s after 5 s.

Runs the real processes (`crm-automation engine` and `crm-automation sink postgres`) on the
configured services, else on a local stack of its own (bench/common.py). Per rate: a fresh
topic prefix and database, one immediate `copy_deal` rule on (deals-00, NEW), a producer
paced at the rate (each event a new deal entering NEW, so each causes exactly one copy,
`occurred_at` set to the wall clock when it is produced), and a poller that reads new
`deals` rows every 10 ms. Latency = the time the row was first seen committed minus the
event's `occurred_at` (so it includes up to one poll interval); `created_at` (the sink
transaction's start) gives a lower bound, also reported.

Before the timed window the same paced load runs for a warm-up (--warmup: 20 s, 5 s with
--quick) and drains: a freshly started broker takes tens of seconds at rate to reach its
steady speed (its JIT compiler), which a broker in service has. Its latencies are
reported apart (`warmup_p99_ms`, `warmup_max_ms`), not left out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from automation_core.model import Action, Company, Contact, EntityType, Item, StageChanged
from automation_core.rules_file import validate_rules_file
from crm_automation.stack.processes import free_port
from runtime import codec, db, kafka_clients, rules_topic, topics
from runtime.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    CLI,
    cpu_seconds,
    metric_families,
    percentile,
    sample_sums,
    stack_env,
    stack_settings,
    start_process,
    start_profiler,
    stop_process,
    stop_profiler,
    write_result,
)  # noqa: E402
from plots import latency_vs_rate  # noqa: E402

RULES = """
pipelines:
  - {id: deals-00, entity_type: DEAL, stages: [NEW, QUALIFIED, WON]}
  - {id: deals-01, entity_type: DEAL, stages: [NEW, QUALIFIED, WON]}
rules:
  - id: copy-new-deals
    trigger: {entity_type: DEAL, pipeline: deals-00, stage: NEW}
    action: {type: copy_deal, target_pipeline: deals-01, suffix: " (copy)", responsible: u-9}
"""


def event(n: int, run: str) -> StageChanged:
    item = Item(
        title=f"Maintenance contract {n}",
        responsible_id=f"u-{n % 40}",
        amount=Decimal(12_000 + n % 1000),
        currency="EUR",
        company=Company(f"co-{n % 900}", "Weber GmbH"),
        contacts=(
            Contact(f"ct-{n}-0", "Anna", "Müller", f"c{n}@example.com", "+49 30 1234567"),
            Contact(f"ct-{n}-1", "Jonas", "Schmidt", None, None),
        ),
        fields={"UF_CONTRACT_NO": f"MV-{n:06d}", "UF_REGION": "north"},
    )
    return StageChanged(
        event_id=f"evt-{run}-{n}",
        occurred_at=datetime.now(UTC),
        entity_type=EntityType.DEAL,
        item_id=f"{run}-{n}",
        pipeline_id="deals-00",
        stage_id="NEW",
        previous_stage_id=None,
        item=item,
    )


ENGINE_ENV: dict[str, str] = {}
"""Extra settings for the engine (--engine-env KEY=VALUE, for A/B runs of one lever)."""


def run_rate(
    base: Settings,
    rate: int,
    seconds: float,
    work: Path,
    profile: Path | None = None,
    *,
    warmup: float,
) -> dict[str, Any]:
    """One steady rate: processes up, warm-up, paced events, latencies of every copy."""
    run = uuid.uuid4().hex[:8]
    server_url = base.database_url.get_secret_value() if base.database_url else ""
    dbname = f"bench_latency_{run}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    url = psycopg.conninfo.make_conninfo(server_url, dbname=dbname)
    s = base.model_copy(
        update={
            "topic_prefix": f"bench-lat-{run}.",
            "database_url": SecretStr(url),
        }
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        db.migrate(url)
        topics.create_topics(AdminClient(kafka_clients.admin_config(s)), s)
        plan = rules_topic.plan_apply(
            validate_rules_file(RULES), rules_topic.Published(), prune=False
        )
        rules_topic.execute(s, plan, datetime.now(UTC))
        env = stack_env(s)
        ports: dict[str, int] = {}
        for name, command, port_var in (
            ("engine", [CLI, "engine"], "CRM_AUTOMATION_ENGINE_METRICS_PORT"),
            ("sink", [CLI, "sink", "postgres"], "CRM_AUTOMATION_SINK_POSTGRES_METRICS_PORT"),
        ):
            home = work / f"{name}-{rate}"
            home.mkdir(parents=True, exist_ok=True)
            ports[name] = free_port()
            child_env = {**env, "CRM_AUTOMATION_HOME": str(home), port_var: str(ports[name])}
            if name == "engine":
                child_env.update(ENGINE_ENV)
            processes.append(start_process(command, child_env, home, name))
        result = measure(s, url, rate, seconds, run, processes, profile, warmup=warmup)
        return {**result, **engine_batches(ports["engine"]), **sink_batches(ports["sink"])}
    finally:
        for process in processes:
            stop_process(process)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def measure(
    s: Settings,
    url: str,
    rate: int,
    seconds: float,
    run: str,
    processes: list[subprocess.Popen[bytes]],
    profile: Path | None = None,
    *,
    warmup: float,
) -> dict[str, Any]:
    producer = Producer(kafka_clients.producer_config(s))
    topic = s.topic(topics.STAGE_CHANGES)

    def send(n: int) -> None:
        e = event(n, run)
        producer.produce(topic, key=e.key.encode(), value=codec.encode(e))
        producer.poll(0)

    seen: dict[int, tuple[float, float]] = {}
    stop_polling = threading.Event()

    def poll() -> None:
        """Rows as they become visible: (seen - occurred_at, created_at - occurred_at)."""
        with psycopg.connect(url, autocommit=True) as conn:
            low = 0
            while not stop_polling.is_set():
                rows = conn.execute(
                    "SELECT id, event_occurred_at, created_at FROM deals WHERE id > %s", (low,)
                ).fetchall()
                now = datetime.now(UTC)
                for row_id, occurred, created in rows:
                    if row_id not in seen:
                        seen[row_id] = (
                            (now - occurred).total_seconds(),
                            (created - occurred).total_seconds(),
                        )
                while low + 1 in seen:
                    low += 1
                time.sleep(0.01)

    def paced(first: int, total: int) -> float:
        """Events `first`.. `first + total - 1` at `rate`; the seconds it took."""
        started = time.perf_counter()
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            send(first + i)
        producer.flush(30)
        return time.perf_counter() - started

    def wait_for(count: int) -> bool:
        """Until `count` copies are in Postgres (False after 120 s without them)."""
        deadline = time.monotonic() + 120
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return len(seen) >= count

    # Warm-up: the processes are up and a first copy went through end to end.
    deadline = time.monotonic() + 120
    n = 0
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        while not seen:
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("no copy reached Postgres within 120 s of start-up")
            send(n)
            n += 1
            producer.flush(5)
            time.sleep(0.5)
        time.sleep(2)
        cold = len(seen)
        # Warm-up at rate, then drained: the timed window starts from a steady state.
        warm_total = int(rate * warmup)
        paced(n, warm_total)
        n += warm_total
        # Not drained (a rate the stack does not sustain): its late copies count as the
        # timed window's first ones, and the run says so.
        drained = wait_for(cold + warm_total)
        warm = len(seen)
        cpu_before = [cpu_seconds(p.pid) for p in processes]
        profilers = []
        if profile is not None:
            for p, name in zip(processes, ("engine", "sink"), strict=True):
                out = profile / f"latency-{rate}-{name}.txt"
                profilers.append(start_profiler(p.pid, out, idle=True))
        total = int(rate * seconds)
        started = time.perf_counter()
        sent_seconds = paced(n, total)
        wait_for(warm + total)
        drained_seconds = time.perf_counter() - started
        cpu = [cpu_seconds(p.pid) - b for p, b in zip(processes, cpu_before, strict=True)]
        for profiler in profilers:
            stop_profiler(profiler)
    finally:
        stop_polling.set()
        poller.join()
    timed = engine_latencies(s, warm + total)[-total:]
    engine_ms = [lat for _at, lat in timed]
    # Not sustained: the copies that arrived within 120 s after the last send are measured
    # and the shortfall is reported (their latencies then understate the backlog).
    arrived = max(0, len(seen) - warm)
    measured = sorted(seen.items())[warm:]
    if not measured:
        raise RuntimeError(f"none of {total} copies arrived")
    lat = [v[0] for _k, v in measured]
    warming = [v[0] for _k, v in sorted(seen.items())[cold:warm]] or [0.0]
    created = [v[1] for _k, v in measured]
    return {
        "rate_target": rate,
        "rate_achieved": total / sent_seconds,
        "events": total,
        "arrived": arrived,
        "complete": arrived >= total,
        "p50_ms": percentile(lat, 50) * 1000,
        "p95_ms": percentile(lat, 95) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat) * 1000,
        "warmup_seconds": warmup,
        "warmup_drained": drained,
        "warmup_p99_ms": percentile(warming, 99) * 1000,
        "warmup_max_ms": max(warming) * 1000,
        "created_p50_ms": percentile(created, 50) * 1000,
        "created_p99_ms": percentile(created, 99) * 1000,
        # The engine's share: occurred_at to the action's append time on the topic.
        "engine_p50_ms": percentile(engine_ms, 50) if engine_ms else None,
        "engine_p99_ms": percentile(engine_ms, 99) if engine_ms else None,
        # Over the run: the engine's largest latency per quarter second of append time
        # (steady queueing shows as a plateau, a stall as a spike).
        "engine_max_ms_per_quarter_second": quarter_second_maxima(timed),
        # CPU share of one core while the events were sent and drained (1.0 = saturated).
        "engine_cpu_share": cpu[0] / drained_seconds,
        "sink_cpu_share": cpu[1] / drained_seconds,
    }


def histogram(families: list[Any], name: str, one: str, many: str) -> dict[str, float]:
    """One histogram over the whole run: observations (`many`), their mean (`one`_ms_mean)
    and how many took longer than 100 and 250 ms (its buckets)."""
    count = total = 0.0
    within: dict[str, float] = {}
    for family in families:
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_bucket"):
                le = sample.labels["le"]
                within[le] = within.get(le, 0.0) + sample.value
    return {
        many: count,
        f"{one}_ms_mean": total * 1000 / count if count else 0.0,
        f"{many}_over_100ms": count - within.get("0.1", count),
        f"{many}_over_250ms": count - within.get("0.25", count),
    }


def engine_batches(port: int) -> dict[str, float]:
    """The engine's batching over the whole run (warm-up included), from its metrics: every
    event it evaluated (the copies re-enter as events of `deals-01`), its batches, and how
    long the batches waited for Kafka to acknowledge their outputs."""
    families = metric_families(port)
    values = sample_sums(families)
    events = values.get("crm_automation_events_total", 0.0)
    batches = values.get("crm_automation_engine_batch_duration_seconds_count", 0.0)
    busy = values.get("crm_automation_engine_batch_duration_seconds_sum", 0.0)
    return {
        "engine_events": events,
        "engine_batches": batches,
        "engine_events_per_batch": events / batches if batches else 0.0,
        "engine_batch_ms_per_event": busy * 1000 / events if events else 0.0,
        **histogram(
            families,
            "crm_automation_engine_confirm_duration_seconds",
            "engine_confirm",
            "engine_confirms",
        ),
    }


def sink_batches(port: int) -> dict[str, float]:
    """The Postgres sink's batch writes (one transaction each) over the whole run."""
    name = "crm_automation_sink_batch_duration_seconds"
    return histogram(metric_families(port), name, "sink_batch", "sink_batches")


def quarter_second_maxima(timed: list[tuple[int, float]]) -> list[float]:
    """The largest latency in each 250 ms of append time, from the first to the last."""
    if not timed:
        return []
    first = timed[0][0]
    maxima: dict[int, float] = {}
    for appended, latency in timed:
        bucket = (appended - first) // 250
        maxima[bucket] = max(maxima.get(bucket, 0.0), latency)
    return [maxima.get(b, 0.0) for b in range(max(maxima) + 1)]


def engine_latencies(s: Settings, expected: int) -> list[tuple[int, float]]:
    """(append time, occurred_at -> the action's timestamp on the actions topic), both in
    ms, in append order."""
    consumer = Consumer(
        {
            **kafka_clients.consumer_config(s, f"bench-latency-{uuid.uuid4().hex[:8]}"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([s.topic(topics.ACTIONS)])
    out: list[tuple[int, float]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in consumer.consume(1000, 1.0):
                if m.error() is not None or m.value() is None:
                    continue
                action = codec.decode_as(m.value(), Action)
                appended = m.timestamp()[1]
                occurred = action.occurred_at.timestamp() * 1000
                out.append((appended, appended - occurred))
    finally:
        consumer.close()
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s per rate instead of 30 s")
    parser.add_argument("--rates", default="500,2000")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--profile", type=Path, help="py-spy (with idle) engine and sink to DIR")
    parser.add_argument(
        "--engine-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the engine (e.g. CRM_AUTOMATION_ENGINE_BATCH_WINDOW_SECONDS=0.01)",
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds at rate before the timed window (20; 5 --quick)"
    )
    args = parser.parse_args()
    ENGINE_ENV.update(item.split("=", 1) for item in args.engine_env)
    seconds = args.seconds or (4.0 if args.quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (5.0 if args.quick else 20.0)
    rates = [int(r) for r in args.rates.split(",")]
    result: dict[str, Any] = {"seconds_per_rate": seconds, "warmup": warmup, "by_rate": {}}
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp, stack_settings() as base:
        for rate in rates:
            print(f"{rate:,} events/s for {warmup:.0f} + {seconds:.0f} s ...", flush=True)
            r = run_rate(base, rate, seconds, Path(tmp), args.profile, warmup=warmup)
            result["by_rate"][str(rate)] = r
            print(
                f"  p50 {r['p50_ms']:.0f} ms  p95 {r['p95_ms']:.0f} ms  p99 {r['p99_ms']:.0f} ms"
                f"  (of which engine p50 {r['engine_p50_ms'] or 0:.0f} ms)"
                f"  (CPU of one core: engine {r['engine_cpu_share']:.0%},"
                f" sink {r['sink_cpu_share']:.0%})"
                f"  (engine: {r['engine_events']:.0f} events in {r['engine_batches']:.0f}"
                f" batches, {r['engine_events_per_batch']:.1f} per batch,"
                f" {r['engine_batch_ms_per_event']:.2f} ms in batches per event;"
                f" waiting for Kafka's acknowledgements: mean {r['engine_confirm_ms_mean']:.0f}"
                f" ms a batch, {r['engine_confirms_over_100ms']:.0f} over 100 ms,"
                f" {r['engine_confirms_over_250ms']:.0f} over 250 ms)"
                f"  (sink: {r['sink_batches']:.0f} batch writes, mean"
                f" {r['sink_batch_ms_mean']:.0f} ms, {r['sink_batches_over_100ms']:.0f} over"
                f" 100 ms, {r['sink_batches_over_250ms']:.0f} over 250 ms)"
                + ("" if r["complete"] else f"  NOT SUSTAINED: {r['arrived']} of {r['events']}"),
                flush=True,
            )
            print(
                f"  warm-up ({warmup:.0f} s at rate, not in the figures above): p99"
                f" {r['warmup_p99_ms']:.0f} ms, max {r['warmup_max_ms']:.0f} ms"
                + (
                    ""
                    if r["warmup_drained"]
                    else "  NOT DRAINED within 120 s: its late copies are in the figures above"
                ),
                flush=True,
            )
            quarters = sorted(r["engine_max_ms_per_quarter_second"])
            if quarters:
                print(
                    f"  engine's largest latency per 0.25 s: median {percentile(quarters, 50):.0f}"
                    f" ms, p90 {percentile(quarters, 90):.0f} ms, max {quarters[-1]:.0f} ms"
                    f" over {len(quarters)} quarters (all in the JSON)",
                    flush=True,
                )
    report(result, args)


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n{'rate (target / achieved)':<26} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
        f" {'created p50/p99':>16}"
    )
    for run in r["by_rate"].values():
        print(
            f"{run['rate_target']:>6,} / {run['rate_achieved']:>7,.0f} ev/s     "
            f" {run['p50_ms']:>6.0f}ms {run['p95_ms']:>6.0f}ms {run['p99_ms']:>6.0f}ms"
            f" {run['max_ms']:>6.0f}ms {run['created_p50_ms']:>7.0f}/{run['created_p99_ms']:.0f}ms"
        )
    first = r["by_rate"].get("500")
    if first is not None:
        r["p99_ms_at_500"] = first["p99_ms"]
        r["target_p99_ms_at_500"] = 250
        r["warmup_p99_ms_at_500"] = first["warmup_p99_ms"]
        print(
            f"p99 at 500 events/s: {first['p99_ms']:.0f} ms (target < 250 ms);"
            f" in the warm-up before it: {first['warmup_p99_ms']:.0f} ms"
        )
    path = write_result("latency", r, {k: str(v) for k, v in vars(args).items()})
    print(f"wrote {path}")
    plot = latency_vs_rate(json.loads(path.read_text()), path.with_suffix(".svg"))
    print(f"drew {plot} (make plots redraws docs/img/ from the newest results)")


if __name__ == "__main__":
    main()
