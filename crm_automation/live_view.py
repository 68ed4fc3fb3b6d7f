"""The compact live view of `crm-automation run`, read from the processors' /metrics."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(host: str, ports: Iterable[int], timeout: float = 2.0) -> Samples:
    """All samples of every reachable endpoint (an unreachable one contributes nothing)."""
    samples: Samples = defaultdict(list)
    for port in ports:
        url = f"http://{host}:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http to our own port
                text = response.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name].append((dict(sample.labels), sample.value))
    return samples


def _total(samples: Samples, name: str, **match: str) -> int:
    return int(
        sum(
            v
            for labels, v in samples.get(name, [])
            if all(labels.get(k) == w for k, w in match.items())
        )
    )


def summary_line(samples: Samples) -> str:
    actions: dict[str, float] = defaultdict(float)
    for labels, value in samples.get("crm_automation_actions_total", []):
        actions[labels.get("kind", "?")] += value
    by_kind = ", ".join(f"{k} {int(v)}" for k, v in sorted(actions.items())) or "none"
    return (
        f"events in {_total(samples, 'crm_automation_events_total')}"
        f" | actions: {by_kind}"
        f" | pending timers {_total(samples, 'crm_automation_timers_pending')}"
        f" | fired {_total(samples, 'crm_automation_timers_fired_total')}"
        f" | rows written {_total(samples, 'crm_automation_sink_writes_total', sink='postgres')}"
        f" | calendar writes {_total(samples, 'crm_automation_sink_writes_total', sink='calendar')}"
        f" | DLQ {_total(samples, 'crm_automation_dlq_messages_total')}"
    )
