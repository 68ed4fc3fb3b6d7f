"""One stage-change message in, the records to produce out: decode, dedupe, evaluate."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable
from dataclasses import dataclass

from prometheus_client import Counter

from automation_core.errors import InvalidEvent
from automation_core.evaluate import Decision, ItemState, evaluate
from automation_core.fast_init import fast_init
from automation_core.model import Action, StageChanged, TimerCommand
from runtime import codec, topics
from runtime.dlq import (
    STAGE_KAFKA_PRODUCE,
    STAGE_TRANSFORMATION,
    STAGE_VALUE_CONVERTER,
    DeadLetter,
    stacktrace_of,
)
from runtime.kafka_clients import Outgoing
from runtime.settings import Settings
from streams.metrics import EngineMetrics
from streams.rules_registry import RulesRegistry

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 990_000
"""Largest record (key + value + headers) the engine produces: librdkafka refuses more
than its message.max.bytes (1,000,000) inside produce() with MSG_SIZE_TOO_LARGE, which
crashed the Faust agent and stopped every partition. A bigger output is a dead letter."""


class _Unknown(InvalidEvent):
    """An event naming a pipeline or stage that the applied rules do not declare."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, field="pipeline_id")
        self.reason = reason


@fast_init
@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int


@fast_init
@dataclass(frozen=True)
class Handled:
    out: list[Outgoing]
    new_state: ItemState | None
    """None: leave the item's state as it is."""


class StageChangeHandler:
    """The engine's work for one message; the Faust agent only moves bytes around it."""

    def __init__(self, settings: Settings, registry: RulesRegistry, metrics: EngineMetrics):
        self._registry = registry
        self._metrics = metrics
        self._actions_topic = settings.topic(topics.ACTIONS)
        self._timers_topic = settings.topic(topics.TIMERS)
        self._executions_topic = settings.topic(topics.EXECUTIONS)
        self._dlq_topic = settings.topic(topics.DLQ)
        self._children: dict[Hashable, Counter] = {}
        self._tally: dict[Counter, int] = {}
        """Counts per labelled counter of the events handled since the last `publish_counts`."""

    def handle(
        self, key: bytes | None, value: bytes | None, state: ItemState | None, source: Source
    ) -> Handled:
        try:
            event = self._decode(key, value)
            decision = evaluate(event, state, self._registry.index)
        except (codec.InvalidMessage, InvalidEvent) as exc:
            reason = getattr(exc, "reason", "invalid_event")
            stage = (
                STAGE_VALUE_CONVERTER
                if isinstance(exc, codec.InvalidMessage)
                else STAGE_TRANSFORMATION
            )
            return Handled([self._dead_letter(key, value, source, exc, reason, stage)], None)
        out = self.records(event.key.encode(), decision)
        largest = max(map(_size, out), default=0)
        if largest > MAX_RECORD_BYTES:
            too_large = InvalidEvent(f"an output record of {largest} bytes is over the limit")
            letter = self._dead_letter(
                key, value, source, too_large, "too_large", STAGE_KAFKA_PRODUCE
            )
            return Handled([letter], None)
        self._count(decision)
        return Handled(out, decision.new_state)

    def _decode(self, key: bytes | None, value: bytes | None) -> StageChanged:
        if value is None:
            raise InvalidEvent("null value on the stage-changes topic")
        event = codec.decode_as(value, StageChanged)
        if key is not None and key.decode("utf-8", "replace") != event.key:
            raise InvalidEvent(f"message key does not match the event's item key {event.key!r}")
        if not event.event_id or not event.item_id:
            # Action ids and the item's duplicate check derive from the event id: two
            # events of one item without one would be taken for the same event.
            raise InvalidEvent("event_id and item_id are required", field="event_id")
        pipelines = self._registry.pipelines
        # An event of a pipeline or stage the rules do not declare was silently dropped
        # (no rule, no execution record); with no pipelines loaded at all, nothing is known.
        if pipelines:
            pipeline = pipelines.get(event.pipeline_id)
            if pipeline is None or pipeline.entity_type != event.entity_type:
                raise _Unknown("unknown_pipeline", f"pipeline {event.pipeline_id!r} not declared")
            if event.stage_id not in pipeline.stages:
                raise _Unknown("unknown_stage", f"stage {event.stage_id!r} not in the pipeline")
        return event

    def records(self, key: bytes, decision: Decision) -> list[Outgoing]:
        """The encoded records of a decision: actions, timer commands, executions."""
        out: list[Outgoing] = []
        for action in (*decision.actions, *decision.completions):
            out.append(Outgoing(self._actions_topic, key, codec.encode(action)))
        for command in (*decision.cancels, *decision.timers):
            out.append(
                Outgoing(self._timers_topic, _timer_key(command, key), codec.encode(command))
            )
        for execution in decision.executions:
            out.append(Outgoing(self._executions_topic, key, codec.encode(execution)))
        return out

    def _dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        source: Source,
        exc: Exception,
        reason: str,
        stage: str,
    ) -> Outgoing:
        self._metrics.events.labels("invalid").inc()
        self._metrics.dlq.labels("engine", reason).inc()
        logger.warning(
            "dead letter topic=%s partition=%s offset=%s reason=%s",
            source.topic,
            source.partition,
            source.offset,
            reason,
        )
        letter = DeadLetter(
            key=key,
            value=value,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            error_class=type(exc).__name__,
            reason=reason,
            message=str(exc),
            stage=stage,
            executing_class="streams.handler.StageChangeHandler",
            stacktrace=stacktrace_of(exc),
            process="engine",
        )
        if len(key or b"") + len(value or b"") > MAX_RECORD_BYTES:
            # Too big to produce again: the headers say where the original is.
            letter = dataclasses.replace(
                letter,
                value=None,
                message=f"{exc}; original value of {len(value or b'')}"
                " bytes not copied (over the record limit)",
            )
        return Outgoing(self._dlq_topic, key, letter.value, letter.headers())

    def _count(self, decision: Decision) -> None:
        # ~10 counts per event at 1,000 rules: each is two dict operations on keys that
        # hash in C (a str, the id of an enum member, a counter child), not a call per
        # count with a tuple of label values (an enum member's hash is a Python call).
        tally = self._tally
        get = tally.get
        children = self._children
        m = self._metrics
        child = children.get(decision.outcome) or self._child(
            decision.outcome, m.events, decision.outcome
        )
        tally[child] = get(child, 0) + 1
        for execution in decision.executions:
            status = execution.status
            child = children.get(id(status)) or self._child(id(status), m.executions, status)
            tally[child] = get(child, 0) + 1
        for action in (*decision.actions, *decision.completions):
            child = self._action_child(action)
            tally[child] = get(child, 0) + 1
        for command in (*decision.cancels, *decision.timers):
            kind = command.kind
            child = children.get(id(kind)) or self._child(id(kind), m.timer_commands, kind)
            tally[child] = get(child, 0) + 1
            if command.action is not None:
                child = self._action_child(command.action)
                tally[child] = get(child, 0) + 1

    def _action_child(self, action: Action) -> Counter:
        kind, mode = action.payload.kind, action.mode
        key = (id(kind), id(mode))
        return self._children.get(key) or self._child(key, self._metrics.actions, kind, mode)

    def publish_counts(self) -> None:
        """Add the counts of the events handled since the last call to the engine's
        metrics. The agent calls it once per batch, after evaluating it: one increment
        per label set and batch instead of ~10 per event (each ~1 µs, under a lock)."""
        tally, self._tally = self._tally, {}
        for child, count in tally.items():
            child.inc(count)

    def _child(self, key: Hashable, counter: Counter, *labels: str) -> Counter:
        """`counter.labels(*labels)` (labels() costs ~4 µs), kept under `key`: an outcome,
        or the id of an enum member (or of two), which lives as long as the process."""
        found = self._children[key] = counter.labels(*labels)
        return found


def _size(out: Outgoing) -> int:
    size = len(out.key or b"") + len(out.value or b"")
    if out.headers:  # only dead letters carry headers
        size += sum(len(k) + len(v or b"") for k, v in out.headers)
    return size


def _timer_key(command: TimerCommand, item_key: bytes) -> bytes:
    if command.item_key is None and command.rule_id is not None:
        return command.rule_id.encode()
    return item_key
