"""Engine benchmark: events/s of `crm-automation engine` against two same-work floors.

    .venv/bin/python bench/engine_bench.py [--quick] [--events E] [--rules N]

Full: 20,000 events, 1,000 rules, rule-count sweep 10 / 1,000 / 10,000, then 2 workers
at 1,000 rules (scale-out, --workers); --quick: the same with 2,000 events.
--profile DIR attaches py-spy to each single-worker engine after its start-up.

Starts its own local stack (Kafka, Postgres, Radicale) under a temp home and stops it at the
end. Each engine run gets a fresh topic prefix (so its own rules topic, stage-changes topic
and consumer group), the same pre-produced events, and a fresh `crm-automation engine`
process; throughput is timed from the first processed event (start-up excluded) until
`crm_automation_events_total` reaches E. Two floors, in the same run on the same events,
do the engine's work without Faust and without evaluating rules (bench/engine_floors.py):
F1 produces the engine's exact output records per event plus a state record, confirming
and committing per batch; F2 also decodes each event and encodes each record. The target
is the engine at >= 0.5 x F2 at 1,000 rules.

Rules: the first 1,000 ("hot") are spread over the first six stages of 50 DEAL pipelines,
where the events land (~3.3 matching rules per event); rules beyond 1,000 ("cold") trigger
on a seventh stage no event enters, so a 10,000-rule run does the same work per event as
the 1,000-rule one and only the rule lookup could make it slower.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from automation_core.model import Company, Contact, EntityType, Item, StageChanged
from automation_core.rules_file import validate_rules_data
from crm_automation.stack.processes import free_port
from runtime import codec, kafka_clients, rules_topic, topics
from runtime.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    CLI,
    PY_SPY,
    RESULTS,
    cpu_seconds,
    stack_env,
    stack_settings,
    start_process,
    start_profiler,
    stop_process,
    stop_profiler,
    write_result,
)
from engine_floors import floor_run, prepare  # noqa: E402
from plots import throughput_vs_rules  # noqa: E402

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
PIPELINES = 50
STAGES = ("NEW", "QUALIFIED", "PROPOSAL", "NEGOTIATION", "WON", "LOST")
COLD_STAGE = "ARCHIVED"
HOT_RULES = 1_000
STALL_SECONDS = 30
COMPARE_EVENTS = 20_000
"""Events of the engine-versus-floors comparison, whatever the sweep's size."""
ITEMS = 4_000

FIRST_NAMES = ("Anna", "Jonas", "Lea", "Mehmet", "Sofia", "Lukas", "Marie", "Paul", "Elif", "Ben")
LAST_NAMES = ("Müller", "Schmidt", "Yılmaz", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann")
COMPANIES = ("GmbH", "AG", "KG", "SE", "e.K.")


def pipeline_id(p: int) -> str:
    return f"deals-{p:02d}"


def rule(j: int) -> dict[str, Any]:
    """Rule j: hot ones on (pipeline j % 50, stage j // 50 % 6), cold ones on ARCHIVED."""
    p = j % PIPELINES
    stage = STAGES[(j // PIPELINES) % len(STAGES)] if j < HOT_RULES else COLD_STAGE
    r: dict[str, Any] = {
        "id": f"r-{j:05d}",
        "trigger": {"entity_type": "DEAL", "pipeline": pipeline_id(p), "stage": stage},
    }
    if j % 4 == 1:
        r["condition"] = {"all": [{"field": "amount", "op": "gt", "value": "5000"}]}
    elif j % 4 == 2:
        r["condition"] = {
            "any": [
                {"all": [{"field": "amount", "op": "ge", "value": "20000"}]},
                {"all": [{"field": "currency", "op": "in", "value": ["EUR", "CHF"]}]},
            ]
        }
    kind = j % 3
    if kind == 0:
        r["action"] = {
            "type": "copy_deal",
            "target_pipeline": pipeline_id((p + 1) % PIPELINES),
            "suffix": " (follow-up)",
            "responsible": "u-9",
        }
    elif kind == 1:
        r["when"] = {"delay": f"{30 + j % 150}d", "working_time": "office"}
        r["cancel_on_stage_exit"] = False
        r["action"] = {
            "type": "create_lead",
            "title": "Renew: {{ company.title }} ({{ item.UF_CONTRACT_NO }})",
            "responsible": ["u-7", "u-8"],
        }
    else:
        r["action"] = {
            "type": "plan_activity",
            "subject": f"Call the client ({stage.lower()})",
            "description": "Discuss the contract with {{ contact.name }} {{ contact.last_name }}",
            "deadline": {"delay": "1d", "at": "14:00", "timezone": "Europe/Berlin"},
            "responsible": "{{ item.responsible_id }}",
            "calendar": {"duration": "30m"},
            "clients": "all",
        }
    return r


def rules_text(n: int) -> str:
    """A rules file (JSON is YAML) with n rules over 50 DEAL pipelines and one LEAD pipeline."""
    doc = {
        "pipelines": [
            {"id": pipeline_id(p), "entity_type": "DEAL", "stages": [*STAGES, COLD_STAGE]}
            for p in range(PIPELINES)
        ]
        + [{"id": "leads", "entity_type": "LEAD", "stages": ["NEW", "IN_PROCESS", "CONVERTED"]}],
        "working_time": {
            "office": {
                "timezone": "Europe/Berlin",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "hours": "09:00-18:00",
                "holidays": "DE",
            }
        },
        "rules": [rule(j) for j in range(n)],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def make_events(count: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """(key, value) of `count` StageChanged events over ITEMS deals, time-ordered per item."""
    rnd = random.Random(seed)
    items: dict[int, tuple[int, int, Item]] = {}
    out = []
    for i in range(count):
        n = rnd.randrange(ITEMS)
        if n not in items:
            company = Company(f"co-{n % 900}", f"{rnd.choice(LAST_NAMES)} {rnd.choice(COMPANIES)}")
            contacts = tuple(
                Contact(
                    f"ct-{n}-{c}",
                    rnd.choice(FIRST_NAMES),
                    rnd.choice(LAST_NAMES),
                    f"contact{n}.{c}@example.com",
                    f"+49 30 {rnd.randrange(10**6, 10**7)}",
                )
                for c in range(rnd.choice((2, 3)))
            )
            item = Item(
                title=f"Maintenance contract {n}",
                responsible_id=f"u-{rnd.randrange(1, 40)}",
                amount=Decimal(rnd.randrange(50_000, 5_000_000)) / 100,
                currency=rnd.choice(("EUR", "EUR", "CHF", "USD")),
                company=company,
                contacts=contacts,
                fields={
                    "UF_CONTRACT_NO": f"MV-{n:05d}",
                    "UF_REGION": rnd.choice(("north", "south", "east", "west")),
                    "UF_PRODUCTS": rnd.sample(["hvac", "elevator", "fire", "access"], 2),
                },
            )
            items[n] = (n % PIPELINES, -1, item)
        p, last, item = items[n]
        stage = (last + 1 + rnd.randrange(2)) % len(STAGES)
        items[n] = (p, stage, item)
        event = StageChanged(
            event_id=f"evt-{i:07d}",
            occurred_at=T0 + timedelta(seconds=i),
            entity_type=EntityType.DEAL,
            item_id=str(n),
            pipeline_id=pipeline_id(p),
            stage_id=STAGES[stage],
            previous_stage_id=STAGES[last] if last >= 0 else None,
            item=item,
        )
        out.append((event.key.encode(), codec.encode(event)))
    return out


def produce_all(s: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(kafka_clients.producer_config(s))
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    kafka_clients.flush_or_raise(producer, 120)


def prepared(base: Settings, n_rules: int, events: list[tuple[bytes, bytes]]) -> Settings:
    """Fresh prefix with its topics, n rules validated and published, the events produced."""
    s = base.model_copy(
        update={
            "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}.",
            "engine_metrics_port": free_port(),
        }
    )
    topics.create_topics(AdminClient(kafka_clients.admin_config(s)), s)
    # The document is JSON: parsed as such (PyYAML, pure Python here, takes ~3 ms a rule).
    validated = validate_rules_data(json.loads(rules_text(n_rules)))
    assert len(validated.rules) == n_rules
    plan = rules_topic.plan_apply(validated, rules_topic.Published(), prune=False)
    rules_topic.execute(s, plan, datetime.now(UTC))
    produce_all(s, s.topic(topics.STAGE_CHANGES), events)
    return s


def last_output_time(s: Settings) -> float:
    """When the engine produced its last record (epoch seconds): the largest timestamp of
    the last record in each partition of its output topics (CreateTime, the engine's clock)."""
    consumer = Consumer(kafka_clients.consumer_config(s, f"bench-{uuid.uuid4().hex[:8]}"))
    try:
        ends: list[TopicPartition] = []
        for name in (topics.ACTIONS, topics.TIMERS, topics.EXECUTIONS):
            topic = s.topic(name)
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high > low:
                    ends.append(TopicPartition(topic, partition, high - 1))
        consumer.assign(ends)
        latest = 0.0
        for _ in ends:
            message = consumer.poll(10)
            assert message is not None and message.error() is None, "no last output record"
            latest = max(latest, message.timestamp()[1] / 1000)
        return latest
    finally:
        consumer.close()


ENGINE_ENV: dict[str, str] = {}
"""Extra settings for every engine this run starts (--engine-env KEY=VALUE, for A/B runs)."""


def engine_env(s: Settings, home: Path) -> dict[str, str]:
    """Like tests/integration/support.py cli_env: exactly these settings for a child process."""
    return {
        **stack_env(s),
        **ENGINE_ENV,
        "CRM_AUTOMATION_HOME": str(home),
        "CRM_AUTOMATION_ENGINE_METRICS_PORT": str(s.engine_metrics_port),
    }


def metrics_text(port: int, timeout: float = 2) -> str:
    """The engine's /metrics exposition."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return str(response.read().decode())


def scrape(port: int) -> dict[str, float]:
    """Sums of the engine counters we report, from its /metrics endpoint."""
    text = metrics_text(port)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "crm_automation_engine_batch_duration_seconds_count":
                out["batches"] = out.get("batches", 0.0) + sample.value
            if sample.name == "crm_automation_engine_batch_duration_seconds_sum":
                out["batch_seconds"] = out.get("batch_seconds", 0.0) + sample.value
            if sample.name == "crm_automation_engine_confirm_duration_seconds_sum":
                out["confirm_seconds"] = out.get("confirm_seconds", 0.0) + sample.value
            if not sample.name.endswith("_total"):
                continue
            name = sample.name.removeprefix("crm_automation_")
            out[name] = out.get(name, 0.0) + sample.value
            if name == "events_total":
                key = f"events_{sample.labels.get('outcome')}"
                out[key] = out.get(key, 0.0) + sample.value
            if name == "actions_total" and sample.labels.get("mode") == "immediate":
                out["actions_immediate"] = out.get("actions_immediate", 0.0) + sample.value
    return out


def record_stall(pid: int, port: int, home: Path) -> None:
    """What a stalled engine was doing: every thread's stack (py-spy dump) and its metrics
    (consumer lag per topic among them), next to its log."""
    with open(home / "stall-stacks.txt", "wb") as out:
        subprocess.run(  # noqa: S603
            [PY_SPY, "dump", "--pid", str(pid)], stdout=out, stderr=out, timeout=60, check=False
        )
    try:
        (home / "stall-metrics.txt").write_text(metrics_text(port, timeout=5))
    except OSError as exc:
        (home / "stall-metrics.txt").write_text(f"scrape failed: {exc}\n")


def engine_run(
    s: Settings,
    expected: int,
    work: Path,
    timeout: float,
    profile: Path | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Start `workers` engines (one group), time first processed event → all E done, stop."""
    processes: list[tuple[subprocess.Popen[bytes], int]] = []
    for w in range(workers):
        home = work / f"worker-{w}"
        home.mkdir(parents=True, exist_ok=True)
        ws = s if w == 0 else s.model_copy(update={"engine_metrics_port": free_port()})
        log = open(home / "engine.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(  # noqa: S603
            [CLI, "engine"], env=engine_env(ws, home), cwd=home, stdout=log, stderr=log
        )
        log.close()
        processes.append((process, ws.engine_metrics_port))
    started = time.monotonic()
    first: tuple[float, float, float] | None = None
    cpu_at_first = cpu_at_end = 0.0
    last: dict[str, float] = {}
    profiler: subprocess.Popen[bytes] | None = None
    progress = (started, 0.0)
    try:
        deadline = started + timeout
        while True:
            for process, _port in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"engine exited with {process.returncode}; see {work}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"engine: {last.get('events_total', 0):.0f} of {expected}")
            try:
                last = {}
                for _process, port in processes:
                    for name, value in scrape(port).items():
                        last[name] = last.get(name, 0.0) + value
            except OSError:
                time.sleep(0.2)
                continue
            now, done = time.monotonic(), last.get("events_total", 0.0)
            if done > progress[1]:
                progress = (now, done)
            elif done > 0 and now - progress[0] > STALL_SECONDS:
                for w, (process, port) in enumerate(processes):
                    record_stall(process.pid, port, work / f"worker-{w}")
                raise RuntimeError(
                    f"engine stalled at {done:.0f} of {expected} events for {STALL_SECONDS} s"
                    f"; see {work}"
                )
            if first is None and done > 0:
                first = (now, done, time.time())
                cpu_at_first = sum(cpu_seconds(p.pid) for p, _port in processes)
                if profile is not None:
                    profiler = start_profiler(processes[0][0].pid, profile)
            if done >= expected:
                cpu_at_end = sum(cpu_seconds(p.pid) for p, _port in processes)
                break
            # Scraping costs the engine CPU (the exposition is rebuilt, ~7 % of its samples
            # at 10 scrapes a second): often only until the first event, then once a
            # second; the end is read from the output records' timestamps below.
            time.sleep(0.1 if first is None else 1.0)
    finally:
        stop_profiler(profiler)
        for process, _port in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _port in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert first is not None
    elapsed = last_output_time(s) - first[2]
    timed = expected - first[1]
    return {
        "workers": workers,
        "startup_s": first[0] - started,
        "timed_events": timed,
        "elapsed_s": elapsed,
        "events_per_s": timed / elapsed,
        # CPU of the engine processes (every thread) per timed event, in µs: steadier
        # than events/s on a shared machine, for an A/B of a lever that saves work.
        "cpu_us_per_event": (cpu_at_end - cpu_at_first) / timed * 1e6,
        "counters": last,
        "executions_per_event": last.get("rule_executions_total", 0.0) / expected,
        "events_per_batch": expected / max(1.0, last.get("batches", 0.0)),
        # Wall time inside batches (evaluate, produce, confirm) per event, in µs: the
        # rest of the engine's time per event goes to Faust and waiting for input.
        "batch_us_per_event": last.get("batch_seconds", 0.0) / expected * 1e6,
        # The part of it spent waiting for Kafka's acknowledgements (outbox.confirm).
        "confirm_us_per_event": last.get("confirm_seconds", 0.0) / expected * 1e6,
        "actions_per_event": last.get("actions_total", 0.0) / expected,
        # Messages produced per event: immediate actions, timer commands, executions.
        "records_per_event": (
            last.get("actions_immediate", 0.0)
            + last.get("timer_commands_total", 0.0)
            + last.get("rule_executions_total", 0.0)
        )
        / expected,
    }


def faust_floor_run(s: Settings, expected: int, work: Path) -> dict[str, Any]:
    """bench/faust_floor.py on `s`'s events: Faust's own cost, with the engine's app."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "faust-floor.json"
    command = [sys.executable, str(Path(__file__).parent / "faust_floor.py")]
    command += ["--expected", str(expected), "--out", str(out)]
    process = start_process(command, engine_env(s, work), work, "faust-floor")
    try:
        process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the Faust floor did not finish: see {work}/faust-floor.log") from None
    finally:
        stop_process(process)
    if not out.exists():
        raise RuntimeError(f"the Faust floor ended without a result: see {work}/faust-floor.log")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 events instead of 20,000")
    parser.add_argument("--events", type=int)
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--sweep", help="rule counts, comma-separated (default 10,1000,10000)")
    parser.add_argument("--batch", type=int, default=500, help="floors' consume batch")
    parser.add_argument(
        "--profile", type=Path, help="py-spy each engine run into DIR (engine-N.svg / .txt)"
    )
    parser.add_argument("--profile-format", choices=("svg", "txt"), default="svg")
    parser.add_argument(
        "--workers", type=int, default=2, help="scale-out run: N workers at --rules (1: none)"
    )
    parser.add_argument(
        "--engine-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every engine started (e.g. CRM_AUTOMATION_ENGINE_BATCH_WINDOW_SECONDS"
        "=0.005), to measure one lever against the same floors",
    )
    args = parser.parse_args()
    ENGINE_ENV.update(item.split("=", 1) for item in args.engine_env)
    n_events = args.events or (2_000 if args.quick else 20_000)
    if args.sweep:
        sweep = sorted({args.rules, *(int(n) for n in args.sweep.split(","))})
    else:
        sweep = sorted({10, args.rules, 10_000})
    print(f"generating {n_events:,} events ...", flush=True)
    events = make_events(n_events)
    result: dict[str, Any] = {
        "events": n_events,
        "rules": args.rules,
        "event_bytes_avg": sum(len(v) for _k, v in events) / n_events,
    }
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp, stack_settings() as base:
        result["partitions"] = base.partitions
        runs: dict[int, dict[str, Any]] = {}
        for n in sweep:
            print(f"engine with {n:,} rules ...", flush=True)
            s = prepared(base, n, events)
            profile = None
            if args.profile is not None:
                profile = args.profile / f"engine-{n}.{args.profile_format}"
            try:
                runs[n] = engine_run(s, n_events, Path(tmp) / f"engine-{n}", 900, profile)
            except RuntimeError as exc:
                # Reported, not hidden: one retry on a fresh prefix, then the error stands.
                print(f"  {exc}; retrying once on a fresh prefix", flush=True)
                result.setdefault("failed_runs", []).append({"rules": n, "error": str(exc)})
                RESULTS.mkdir(exist_ok=True)
                failed = Path(tmp) / f"engine-{n}" / "worker-0"
                for name in ("engine.log", "stall-stacks.txt", "stall-metrics.txt"):
                    if (failed / name).exists():
                        kept = RESULTS / f"engine-failed-{n}-rules-{name}"
                        shutil.copy(failed / name, kept)
                        print(f"  kept {kept}", flush=True)
                s = prepared(base, n, events)
                runs[n] = engine_run(s, n_events, Path(tmp) / f"engine-{n}-retry", 900, profile)
            print(f"  {runs[n]['events_per_s']:,.0f} events/s", flush=True)
        result["engine_by_rules"] = {str(n): r for n, r in runs.items()}
        # The floors take well under a second for a few thousand events: their start-up
        # then weighs more than the engine's, so the comparison runs on COMPARE_EVENTS.
        compare_events = max(n_events, COMPARE_EVENTS)
        if compare_events == n_events:
            compared, engine = events, runs[args.rules]
            s = prepared(base, args.rules, compared)  # a fresh group for the floors
        else:
            print(f"engine with {args.rules:,} rules on {compare_events:,} events ...", flush=True)
            compared = make_events(compare_events)
            s = prepared(base, args.rules, compared)
            engine = engine_run(s, compare_events, Path(tmp) / "compared", 900)
            print(f"  {engine['events_per_s']:,.0f} events/s", flush=True)
        result["compared"] = {"events": compare_events, "engine": engine}
        work, handler = prepare(
            s, validate_rules_data(json.loads(rules_text(args.rules))), compared
        )
        for floor, codec_work in (("f1", False), ("f2", True)):
            print(f"floor {floor.upper()} on the same {compare_events:,} events ...", flush=True)
            result[floor] = floor_run(
                s, work, handler, compare_events, codec_work=codec_work, batch=args.batch
            )
            print(f"  {result[floor]['events_per_s']:,.0f} events/s", flush=True)
        print("Faust alone (the engine's app, no work) on the same events ...", flush=True)
        result["faust"] = faust_floor_run(s, compare_events, Path(tmp) / "faust-floor")
        print(f"  {result['faust']['events_per_s']:,.0f} events/s", flush=True)
        if args.workers > 1:
            print(f"engine, {args.workers} workers, {args.rules:,} rules ...", flush=True)
            s = prepared(base, args.rules, events)
            scaled = engine_run(s, n_events, Path(tmp) / "scale-out", 900, workers=args.workers)
            print(f"  {scaled['events_per_s']:,.0f} events/s", flush=True)
            result["scale_out"] = {
                "workers": args.workers,
                "partitions": base.partitions,
                "events_per_s": scaled["events_per_s"],
                "one_worker_events_per_s": runs[args.rules]["events_per_s"],
                "speedup": scaled["events_per_s"] / runs[args.rules]["events_per_s"],
                "run": scaled,
            }
    main_rate = result["compared"]["engine"]["events_per_s"]
    result["engine_events_per_s"] = main_rate
    result["engine_vs_f1"] = main_rate / result["f1"]["events_per_s"]
    result["engine_vs_f2"] = main_rate / result["f2"]["events_per_s"]
    # The floors produce exactly the engine's records: the same count per event.
    result["records_per_event"] = result["compared"]["engine"]["records_per_event"]
    # Same work per event from 1,000 rules up (the extra rules are cold): only the lookup
    # could slow the larger runs. 10 rules do less per event (0.06 rule runs, not 3.7).
    same_work = [r["events_per_s"] for n, r in runs.items() if n >= HOT_RULES]
    result["ratios"] = {
        "engine_vs_f1": result["engine_vs_f1"],
        "engine_vs_f2": result["engine_vs_f2"],
    }
    if len(same_work) > 1:  # a sweep of fewer rule counts from 1,000 up has nothing to compare
        result["flatness"] = min(same_work) / max(same_work)
        result["ratios"]["engine_rules_flatness"] = result["flatness"]
    if "scale_out" in result:
        result["ratios"]["engine_scale_out_speedup"] = result["scale_out"]["speedup"]
    report(result, args)


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n{r['events']:,} StageChanged events (avg {r['event_bytes_avg']:.0f} B), "
        f"{r['partitions']} partitions"
    )
    print(f"{'run':<34} {'events/s':>10} {'rules/event':>12} {'actions/event':>14} {'start-up':>9}")
    for n, run in r["engine_by_rules"].items():
        print(
            f"{'engine, ' + format(int(n), ',') + ' rules':<34} {run['events_per_s']:>10,.0f}"
            f" {run['executions_per_event']:>12.2f} {run['actions_per_event']:>14.2f}"
            f" {run['startup_s']:>8.1f}s"
        )
        print(
            f"  {run['events_per_batch']:.0f} events per batch, {run['batch_us_per_event']:.0f}"
            f" us per event from taking a batch to its confirmation (batches overlap; of"
            f" it {run.get('confirm_us_per_event', 0):.0f} waiting for acknowledgements),"
            f" {1e6 / run['events_per_s']:.0f} us per event in all,"
            f" {run['cpu_us_per_event']:.0f} us of CPU per event"
        )
    for floor, what in (("f1", "F1 transport floor"), ("f2", "F2 transport+codec floor")):
        print(
            f"{what:<34} {r[floor]['events_per_s']:>10,.0f}"
            f"  ({r[floor]['cpu_us_per_event']:.0f} us of CPU per event)"
        )
    faust = r["faust"]
    print(
        f"{'Faust alone (consume, batch, ack)':<34} {faust['events_per_s']:>10,.0f}"
        f"  ({faust['cpu_us_per_event']:.0f} us of CPU per event)"
    )
    print(
        f"engine / F1 ({r['rules']:,} rules): {r['engine_vs_f1']:.2f}; engine / F2:"
        f" {r['engine_vs_f2']:.2f} (target >= 0.5); {r['records_per_event']:.1f} records"
        f" per event (floors: {r['f2']['records_per_event']:.1f} + 1 state record)"
    )
    if "flatness" in r:
        print(f"slowest / fastest engine run from 1,000 rules up (same work): {r['flatness']:.2f}")
    if "scale_out" in r:
        so = r["scale_out"]
        print(
            f"scale-out: {so['workers']} workers on {so['partitions']} partitions"
            f" {so['events_per_s']:,.0f} events/s = {so['speedup']:.2f} x one worker"
        )
    path = write_result("engine", r, {k: str(v) for k, v in vars(args).items()})
    print(f"wrote {path}")
    plot = throughput_vs_rules(json.loads(path.read_text()), path.with_suffix(".svg"))
    print(f"drew {plot} (make plots redraws docs/img/ from the newest results)")


if __name__ == "__main__":
    main()
