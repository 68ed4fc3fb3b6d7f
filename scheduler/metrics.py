"""Prometheus metrics of the scheduler, created once per process on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Firing lag (due time -> action confirmed on the topic). The fire loop wakes at the due
# time, so a healthy scheduler sits in the 5-100 ms buckets; seconds mean a backlog or a
# slow broker, minutes to hours mean the scheduler was down (overdue timers fire at once).
_LAG_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)
# One batch is one transaction plus a confirmed produce: ~ms for a few timers on loopback,
# up to seconds for a full batch of 1,000 against a slow disk or broker.
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class SchedulerMetrics:
    pending: Gauge
    scheduled: Counter
    cancelled: Counter
    fired: Counter
    firing_lag: Histogram
    batch_seconds: Histogram
    retries: Counter
    dlq: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SchedulerMetrics:
        return cls(
            pending=Gauge(
                "crm_automation_timers_pending",
                "Timers waiting to fire (all schedulers; refreshed by the fire loop).",
                registry=registry,
            ),
            scheduled=Counter(
                "crm_automation_timers_scheduled_total",
                "New pending timers stored (replayed schedules are not counted).",
                registry=registry,
            ),
            cancelled=Counter(
                "crm_automation_timers_cancelled_total",
                "Timers cancelled before firing, by reason"
                " (stage_exit, rule_cancelled, rule_changed).",
                ["reason"],
                registry=registry,
            ),
            fired=Counter(
                "crm_automation_timers_fired_total",
                "Timers fired: action confirmed on automation.actions and marked fired.",
                registry=registry,
            ),
            firing_lag=Histogram(
                "crm_automation_timer_firing_lag_seconds",
                "From a timer's due time to its action confirmed on automation.actions.",
                buckets=_LAG_BUCKETS,
                registry=registry,
            ),
            batch_seconds=Histogram(
                "crm_automation_scheduler_batch_duration_seconds",
                "Duration of one scheduler batch (one transaction), by loop (ingest, fire).",
                ["loop"],
                buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
            retries=Counter(
                "crm_automation_scheduler_retries_total",
                "Batches retried after a transient failure (Postgres, Kafka), by loop.",
                ["loop"],
                registry=registry,
            ),
            dlq=Counter(
                "crm_automation_dlq_messages_total",
                "Messages sent to the dead-letter topic, by process and reason.",
                ["process", "reason"],
                registry=registry,
            ),
        )
