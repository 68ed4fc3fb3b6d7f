"""Engine liveness soak: many engine starts in a row, each on a backlog, each must finish.

    .venv/bin/python bench/soak_engine.py [--starts 20] [--events 2000] [--rules 10000]

Each start gets a fresh topic prefix (a new consumer group, so every partition starts
never committed), the rules published and the backlog produced before a fresh
`crm-automation engine` starts: the situation in which Faust's recovery used to drop a
block of records and stall (RELIABILITY.md). A start completes when the engine has
processed every event and, after a SIGTERM, its group's committed offsets are at the end
of every partition; a start whose processed count stands still for 30 s is a stall (its
thread stacks and metrics are kept, see engine_bench.record_stall). Prints a line per
start and the tally; writes bench/results/soak-engine-*.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from runtime import kafka_clients, topics
from runtime.settings import Settings
from streams.app import group_id

sys.path.insert(0, str(Path(__file__).parent))
from common import stack_settings, write_result  # noqa: E402
from engine_bench import engine_run, make_events, prepared  # noqa: E402


def committed_lag(s: Settings) -> int:
    """Events between the engine group's committed offsets and the partitions' ends."""
    name = s.topic(topics.STAGE_CHANGES)
    consumer = Consumer(kafka_clients.consumer_config(s, group_id(s)))
    try:
        tps = [TopicPartition(name, p) for p in range(s.partitions)]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            low, high = consumer.get_watermark_offsets(TopicPartition(name, tp.partition), 10)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--rules", type=int, default=10_000)
    args = parser.parse_args()
    events = make_events(args.events)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="soak-engine-") as tmp, stack_settings() as base:
        for start in range(1, args.starts + 1):
            s = prepared(base, args.rules, events)
            began = time.monotonic()
            try:
                run = engine_run(s, args.events, Path(tmp) / f"start-{start}", 300)
                lag = committed_lag(s)
                outcome = "complete" if lag == 0 else f"committed lag {lag}"
            except RuntimeError as exc:
                run, outcome = {}, f"failed: {exc}"
            seconds = time.monotonic() - began
            runs.append({"start": start, "outcome": outcome, "seconds": seconds, **run})
            print(f"start {start:2}: {outcome} in {seconds:.1f} s", flush=True)
    complete = sum(r["outcome"] == "complete" for r in runs)
    print(f"{complete} of {args.starts} starts complete", flush=True)
    summary = {"starts": args.starts, "events": args.events, "rules": args.rules}
    path = write_result("soak-engine", {**summary, "complete": complete, "runs": runs}, vars(args))
    print(f"results: {path}", flush=True)
    if complete != args.starts:
        sys.exit(1)


if __name__ == "__main__":
    main()
