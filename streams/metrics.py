"""Prometheus metrics of the engine, created once per process on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# One batch of up to a few hundred events: ~1 ms when idle to ~1 s under full load.
BATCH_SECONDS = "crm_automation_engine_batch_duration_seconds"
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The part of a batch spent waiting for Kafka's acknowledgements of its output records
# (and of the item states the batch before it wrote to the changelog).
CONFIRM_SECONDS = "crm_automation_engine_confirm_duration_seconds"


@dataclass(frozen=True)
class EngineMetrics:
    events: Counter
    executions: Counter
    actions: Counter
    timer_commands: Counter
    dlq: Counter
    batch_seconds: Histogram
    confirm_seconds: Histogram
    rules_loaded: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> EngineMetrics:
        return cls(
            events=Counter(
                "crm_automation_events_total",
                "Stage-change events consumed by the engine, by outcome "
                "(processed, duplicate, stale, invalid).",
                ["outcome"],
                registry=registry,
            ),
            executions=Counter(
                "crm_automation_rule_executions_total",
                "Rules considered for an event, by execution status "
                "(fired, scheduled, skipped, failed, stale).",
                ["status"],
                registry=registry,
            ),
            actions=Counter(
                "crm_automation_actions_total",
                "Actions emitted by the engine, by kind and mode (immediate, delayed).",
                ["kind", "mode"],
                registry=registry,
            ),
            timer_commands=Counter(
                "crm_automation_timer_commands_total",
                "Timer commands emitted by the engine, by kind.",
                ["kind"],
                registry=registry,
            ),
            dlq=Counter(
                "crm_automation_dlq_messages_total",
                "Messages sent to the dead-letter topic, by process and reason.",
                ["process", "reason"],
                registry=registry,
            ),
            batch_seconds=Histogram(
                BATCH_SECONDS,
                "Time to evaluate and confirm one batch of events.",
                buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
            confirm_seconds=Histogram(
                CONFIRM_SECONDS,
                "Time one batch waits for Kafka to acknowledge its output records "
                "(and the item states of the batch before it).",
                buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
            rules_loaded=Gauge(
                "crm_automation_rules_loaded",
                "Rules currently known to this engine worker.",
                registry=registry,
            ),
        )
