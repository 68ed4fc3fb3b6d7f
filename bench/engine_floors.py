"""Floors for the engine benchmark: plain confluent-kafka loops that do the engine's work.

F1 (transport): consume the events in batches and, for each, produce exactly the records
the engine produces for it (its actions, timer commands and execution records, encoded
before timing) plus one state record to a compacted topic, with the engine's producer
settings; per batch, wait for every delivery (flush) and commit the batch's offsets.

F2 (codec): F1, plus decoding each event and encoding each output record (and the item
state) from the domain objects the engine's evaluation returned, with the engine's own
encoder (`StageChangeHandler.records`).

Neither evaluates rules: the engine over F2 is what evaluation, Faust and the engine's own
overhead cost. The outputs are computed beforehand by the engine's handler itself, over the
events in produce order with each item's state carried along, as one engine sees them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from automation_core.evaluate import Decision, ItemState, evaluate
from automation_core.model import StageChanged
from automation_core.rules_file import ValidatedRules
from runtime import codec, kafka_clients, rules_topic, topics
from runtime.kafka_clients import Outgoing
from runtime.settings import Settings
from streams.handler import StageChangeHandler
from streams.metrics import EngineMetrics
from streams.rules_registry import RulesRegistry
from streams.state_codec import state_to_bytes


@dataclass(frozen=True)
class EventWork:
    """What the engine does for one event, prepared before timing."""

    records: list[Outgoing]
    """The engine's encoded output records (F1 produces these as they are)."""
    state: bytes | None
    """The item's new state, encoded (None: unchanged)."""
    decision: Decision
    """The evaluation's result, for F2 to encode again."""
    new_state: ItemState | None


def prepare(
    s: Settings, validated: ValidatedRules, events: list[tuple[bytes, bytes]]
) -> tuple[dict[bytes, EventWork], StageChangeHandler]:
    """The engine's work for every event (by its value bytes) and the handler that encodes."""
    registry = RulesRegistry()
    plan = rules_topic.plan_apply(validated, rules_topic.Published(), prune=False)
    for record in plan.upserts:
        registry.apply(rules_topic.key_of(record).encode(), codec.encode(record))
    handler = StageChangeHandler(s, registry, EngineMetrics.create(CollectorRegistry()))
    states: dict[bytes, ItemState] = {}
    work: dict[bytes, EventWork] = {}
    for key, value in events:
        event = codec.decode_as(value, StageChanged)
        decision = evaluate(event, states.get(key), registry.index)
        if decision.new_state is not None:
            states[key] = decision.new_state
        new_state = decision.new_state
        state = state_to_bytes(new_state) if new_state is not None else None
        work[value] = EventWork(handler.records(key, decision), state, decision, new_state)
    return work, handler


def floor_run(
    s: Settings,
    work: dict[bytes, EventWork],
    handler: StageChangeHandler,
    expected: int,
    *,
    codec_work: bool,
    batch: int = 500,
) -> dict[str, Any]:
    """F1 (codec_work=False) or F2 over the events of `s`'s stage-changes topic."""
    name = "f2" if codec_work else "f1"
    out_topics = {
        s.topic(t): s.topic(f"bench.{name}.{t}")
        for t in (topics.ACTIONS, topics.TIMERS, topics.EXECUTIONS, topics.DLQ)
    }
    state_topic = s.topic(f"bench.{name}.item-state")
    admin = AdminClient(kafka_clients.admin_config(s))
    new = [NewTopic(t, s.partitions, 1) for t in out_topics.values()]
    new.append(NewTopic(state_topic, s.partitions, 1, config={"cleanup.policy": "compact"}))
    for future in admin.create_topics(new).values():
        future.result()
    consumer = Consumer(kafka_clients.consumer_config(s, f"bench-{name}-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([s.topic(topics.STAGE_CHANGES)])
    producer = Producer(kafka_clients.producer_config(s))
    done, records, first, cpu_at_first = 0, 0, 0.0, 0.0
    deadline = time.monotonic() + 300

    def produce(topic: str, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:
                producer.poll(0.05)

    try:
        while done < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {done} of {expected}")
            messages = consumer.consume(batch, 0.005)
            if not messages:
                continue
            if not first:
                first = time.perf_counter()
                cpu_at_first = time.process_time()
            for m in messages:
                if m.error() is not None:
                    continue
                value = m.value()
                w = work[value]
                if codec_work:
                    event = codec.decode_as(value, StageChanged)
                    outs = handler.records(event.key.encode(), w.decision)
                    state = state_to_bytes(w.new_state) if w.new_state is not None else None
                else:
                    outs, state = w.records, w.state
                for out in outs:
                    produce(out_topics[out.topic], out.key, out.value, out.headers or None)
                if state is not None:
                    produce(state_topic, m.key(), state)
                records += len(outs)
                done += 1
            kafka_clients.flush_or_raise(producer, 120)
            ends = {(m.topic(), m.partition()): m.offset() for m in messages if m.error() is None}
            consumer.commit(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in ends.items()],
                asynchronous=False,
            )
        elapsed = time.perf_counter() - first
        cpu = time.process_time() - cpu_at_first
    finally:
        consumer.close()
    return {
        "events": done,
        "elapsed_s": elapsed,
        "events_per_s": done / elapsed,
        # This process's CPU (every thread, librdkafka's too) per event, in µs.
        "cpu_us_per_event": cpu / done * 1e6,
        "records_per_event": records / done,
        "batch": batch,
        "at": datetime.now(UTC).isoformat(),
    }
