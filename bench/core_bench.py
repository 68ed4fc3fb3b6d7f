"""The engine's pure work per event, without Kafka: evaluate, encode the outputs, decode.

    .venv/bin/python bench/core_bench.py [--events E] [--rules N] [--repeat R]

The events and rules of bench/engine_bench.py (20,000 events, 1,000 rules by default),
evaluated in order with each item's state carried along, as one engine sees them. Prints
µs per event for `evaluate()`, for encoding every output record (actions, timer
commands, executions) and for decoding the event; the best of R timed passes after a
warm-up. These are the pure rows of BENCHMARKS.md's engine budget. `handle` is the
agent's whole work per event outside Faust and Kafka: the item state read from its bytes,
`StageChangeHandler.handle` (decode, evaluate, encode, count) and the new state written
back to bytes, with the counts published once per 500 events as the agent does per batch.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from automation_core.evaluate import Decision, ItemState, evaluate
from automation_core.model import StageChanged
from automation_core.rules_file import validate_rules_data
from runtime import codec, rules_topic
from runtime.settings import Settings
from streams.handler import Source, StageChangeHandler
from streams.metrics import EngineMetrics
from streams.rules_registry import RulesRegistry
from streams.state_codec import state_from_bytes, state_to_bytes

sys.path.insert(0, str(Path(__file__).parent))
from engine_bench import make_events, rules_text  # noqa: E402


def best_of(repeat: int, work: Callable[[], Any], clock: Callable[[], float]) -> float:
    """The shortest of `repeat` timed runs of `work`, after one untimed warm-up run."""
    work()
    best = float("inf")
    for _ in range(repeat):
        started = clock()
        work()
        best = min(best, clock() - started)
    return best


STAGES = ("evaluate", "encode", "decode", "handle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=STAGES,
        help="time this stage alone (bench/instructions.py counts one stage's instructions)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU time, steadier for an A/B on a shared machine",
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    events = make_events(args.events)
    registry = RulesRegistry()
    validated = validate_rules_data(json.loads(rules_text(args.rules)))
    for record in rules_topic.plan_apply(validated, rules_topic.Published(), False).upserts:
        registry.apply(rules_topic.key_of(record).encode(), codec.encode(record))
    decoded = [(key, codec.decode_as(value, StageChanged)) for key, value in events]
    decisions: list[Decision] = []

    def evaluate_all(keep: bool = False) -> None:
        states: dict[bytes, ItemState] = {}
        for key, event in decoded:
            decision = evaluate(event, states.get(key), registry.index)
            if decision.new_state is not None:
                states[key] = decision.new_state
            if keep:
                decisions.append(decision)

    evaluate_all(keep=True)
    records = [
        r
        for d in decisions
        for r in (*d.actions, *d.completions, *d.cancels, *d.timers, *d.executions)
    ]
    # The engine holds no event or decision past its batch: the inputs prepared here are
    # moved out of the collector's reach, or each full collection would walk all of them
    # (with the decisions kept, the walk over them was part of every timed pass).
    gc.collect()
    gc.freeze()
    per_event = 1e6 / args.events

    def encode_all() -> None:
        for record in records:
            codec.encode(record)

    def decode_all() -> None:
        for _key, value in events:  # nothing kept: the engine holds no event either
            codec.decode_as(value, StageChanged)

    handler = StageChangeHandler(Settings(), registry, EngineMetrics.create(CollectorRegistry()))
    source = Source("bench", 0, 0)

    def handle_all() -> None:
        states: dict[bytes, bytes] = {}
        for n, (key, value) in enumerate(events):
            handled = handler.handle(key, value, state_from_bytes(states.get(key)), source)
            if handled.new_state is not None:
                states[key] = state_to_bytes(handled.new_state)
            if n % 500 == 499:
                handler.publish_counts()
        handler.publish_counts()

    work = {
        "evaluate": evaluate_all,
        "encode": encode_all,
        "decode": decode_all,
        "handle": handle_all,
    }
    timed = {
        stage: best_of(args.repeat, work[stage], clock) * per_event
        for stage in STAGES
        if args.only in (None, stage)
    }
    print(
        f"{args.events:,} events, {args.rules:,} rules, best of {args.repeat} ({args.clock} time)"
    )
    labels = {
        "evaluate": "evaluate",
        "encode": "encode the output records",
        "decode": "decode the event",
        "handle": "the agent's work (handle)",
    }
    for stage, micros in timed.items():
        extra = f" ({len(records) / args.events:.1f} records)" if stage == "encode" else ""
        print(f"{labels[stage]:<29}{micros:7.1f} us per event{extra}")


if __name__ == "__main__":
    main()
