"""Prometheus metrics of the sinks, created once per process on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# Batch writes take ~1 ms (tiny batch, loopback) to seconds (large batch, slow disk).
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# End-to-end latency: target p99 < 250 ms for immediate actions; timers add their delay.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class SinkMetrics:
    writes: Counter
    batch_seconds: Histogram
    retries: Counter
    dlq: Counter
    end_to_end: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SinkMetrics:
        return cls(
            writes=Counter(
                "crm_automation_sink_writes_total",
                "Records written by a sink, by sink, kind and outcome.",
                ["sink", "kind", "outcome"],
                registry=registry,
            ),
            batch_seconds=Histogram(
                "crm_automation_sink_batch_duration_seconds",
                "Duration of one sink batch write (one transaction).",
                ["sink"],
                buckets=_DURATION_BUCKETS,
                registry=registry,
            ),
            retries=Counter(
                "crm_automation_sink_retries_total",
                "Batch writes retried after a transient failure (target down).",
                ["sink"],
                registry=registry,
            ),
            dlq=Counter(
                "crm_automation_dlq_messages_total",
                "Messages sent to the dead-letter topic, by process and reason.",
                ["process", "reason"],
                registry=registry,
            ),
            end_to_end=Histogram(
                "crm_automation_end_to_end_latency_seconds",
                "From the triggering event's occurred_at (or a timer's due time) to commit.",
                ["sink", "mode"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
        )
