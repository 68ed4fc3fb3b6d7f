"""Publishing validated rules to the compacted `automation.rules` topic, and reading it back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import Producer

from automation_core.evaluate import cancel_rule
from automation_core.model import Pipeline, Rule
from automation_core.rules_file import ValidatedRules
from runtime import codec, kafka_clients, topics
from runtime.kafka_clients import Outgoing
from runtime.settings import Settings

logger = logging.getLogger(__name__)

PIPELINE_PREFIX = "pipeline:"


@dataclass(frozen=True)
class Published:
    """What the rules topic holds now (the latest value per key)."""

    rules: dict[str, Rule] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The records an apply would publish, computed against what is published."""

    upserts: tuple[Rule | Pipeline, ...]
    deletes: tuple[str, ...]
    """Keys to tombstone (rule ids, or `pipeline:<id>`)."""
    cancelled_rules: tuple[str, ...]
    """Rules deleted or disabled now: their pending timers are cancelled."""
    unchanged: int
    changed: tuple[tuple[str, str, str], ...] = ()
    """Enabled rules whose version changes: (rule id, published version, new version).
    Their pending timers keep firing with the published version unless the apply cancels
    them (`cancel_changed`)."""

    @property
    def empty(self) -> bool:
        return not (self.upserts or self.deletes)


def key_of(record: Rule | Pipeline) -> str:
    return f"{PIPELINE_PREFIX}{record.id}" if isinstance(record, Pipeline) else record.id


def read_published(settings: Settings, timeout: float = 30.0) -> Published:
    """Read the rules topic from the beginning to its end; later records win."""
    name = settings.topic(topics.RULES)
    latest: dict[str, str | bytes | None] = {}
    for message in kafka_clients.read_to_end(settings, name, "crm-automation-rules-cli", timeout):
        key = message.key()
        latest[key.decode() if isinstance(key, bytes) else str(key)] = message.value()
    published = Published()
    for value in latest.values():
        if not isinstance(value, bytes):
            continue
        record = codec.decode(value)
        if isinstance(record, Pipeline):
            published.pipelines[record.id] = record
        elif isinstance(record, Rule):
            published.rules[record.id] = record
    return published


def plan_apply(validated: ValidatedRules, published: Published, prune: bool) -> Plan:
    upserts: list[Rule | Pipeline] = []
    unchanged = 0
    for pipeline in validated.pipelines:
        if published.pipelines.get(pipeline.id) == pipeline:
            unchanged += 1
        else:
            upserts.append(pipeline)
    cancelled = []
    changed: list[tuple[str, str, str]] = []
    for rule in validated.rules:
        old = published.rules.get(rule.id)
        if old is not None and old.version == rule.version:
            unchanged += 1
            continue
        upserts.append(rule)
        if old is not None and old.enabled and not rule.enabled:
            cancelled.append(rule.id)
        elif old is not None and old.enabled:
            changed.append((rule.id, old.version, rule.version))
    deletes: list[str] = []
    if prune:
        wanted_rules = {r.id for r in validated.rules}
        for rule_id in sorted(set(published.rules) - wanted_rules):
            deletes.append(rule_id)
            cancelled.append(rule_id)
        wanted_pipelines = {p.id for p in validated.pipelines}
        deletes += [
            f"{PIPELINE_PREFIX}{p}" for p in sorted(set(published.pipelines) - wanted_pipelines)
        ]
    return Plan(tuple(upserts), tuple(deletes), tuple(cancelled), unchanged, tuple(changed))


def plan_delete(rule_ids: Iterable[str], published: Published) -> Plan:
    ids = tuple(rule_id for rule_id in rule_ids if rule_id in published.rules)
    return Plan((), ids, ids, 0)


Progress = Callable[[int, int], None]
"""Told `(confirmed, total)` each time Kafka confirms one record of a publish."""


def execute(
    settings: Settings,
    plan: Plan,
    now: datetime,
    cancel_changed: bool = False,
    progress: Progress | None = None,
) -> None:
    """Publish the plan: rules and pipelines (pipelines first), tombstones, rule cancels;
    with `cancel_changed`, also cancels of the pending timers of changed rules' published
    versions (the new version's timers are not touched). The cancels are sent only once
    every rule record is confirmed; `progress` hears of each confirmation."""
    producer = Producer(kafka_clients.producer_config(settings))
    ordered = sorted(plan.upserts, key=lambda r: 0 if isinstance(r, Pipeline) else 1)
    rules, timers = settings.topic(topics.RULES), settings.topic(topics.TIMERS)
    records = [Outgoing(rules, key_of(r).encode(), codec.encode(r)) for r in ordered]
    records += [Outgoing(rules, key.encode(), None) for key in plan.deletes]
    cancels = [
        Outgoing(timers, rule_id.encode(), codec.encode(cancel_rule(rule_id, now)))
        for rule_id in plan.cancelled_rules
    ]
    if cancel_changed:
        cancels += [
            Outgoing(timers, rule_id.encode(), codec.encode(cancel_rule(rule_id, now, old)))
            for rule_id, old, _new in plan.changed
        ]
    total, confirmed = len(records) + len(cancels), 0

    def on_confirmed() -> None:
        nonlocal confirmed
        confirmed += 1
        if progress is not None:
            progress(confirmed, total)

    for batch in (records, cancels):
        if batch:
            kafka_clients.produce_and_confirm(producer, batch, on_confirmed=on_confirmed)
    logger.info(
        "rules published upserts=%s deletes=%s cancelled_rules=%s",
        len(plan.upserts),
        len(plan.deletes),
        len(plan.cancelled_rules),
    )
