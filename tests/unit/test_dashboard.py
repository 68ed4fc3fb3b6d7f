"""Grafana dashboard and alert rules use only metrics our processes export, in valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from runtime.consumer_lag import committed_gauge, lag_gauge
from runtime.health import register_process_metrics
from scheduler.metrics import SchedulerMetrics
from sinks.metrics import SinkMetrics
from streams.metrics import EngineMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "crm-automation.json"
PROVISIONING = ROOT / "config" / "grafana" / "provisioning"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"

# Series Prometheus itself adds for every scrape target.
PROMETHEUS_SERIES = {"up"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip
_FACTORIES: list[Callable[[CollectorRegistry], object]] = [
    EngineMetrics.create,
    SchedulerMetrics.create,
    SinkMetrics.create,
    lag_gauge,
    committed_gauge,
    lambda registry: register_process_metrics(registry, "engine"),
]


def exported_series() -> set[str]:
    """Every series name the processes can export, from their metric objects' registries."""
    names: set[str] = set()
    for create in _FACTORIES:
        registry = CollectorRegistry()
        create(registry)
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (label names, values, functions left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue  # a function or a keyword
        if match.start() > 0 and text[match.start() - 1].isdigit():
            continue  # a duration or number suffix such as 5m or 1e3
        names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_metric_name_extractor_finds_selected_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, sink) (rate(crm_automation_x_bucket{sink="a b"}'
        "[5m]))) > 2.5 and on (sink) up == 0 or vector(1) unless foo:bar offset 1h"
    )
    assert metric_names(expr) == {"crm_automation_x_bucket", "up", "foo:bar"}


def test_the_exported_series_include_every_processes_metrics() -> None:
    series = exported_series()
    for name in (
        "crm_automation_events_total",
        "crm_automation_timers_pending",
        "crm_automation_timer_firing_lag_seconds_bucket",
        "crm_automation_sink_writes_total",
        "crm_automation_end_to_end_latency_seconds_bucket",
        "crm_automation_consumer_lag",
    ):
        assert name in series
    assert "crm_automation_events" not in series


@pytest.mark.parametrize(
    "source, exprs",
    [
        pytest.param("dashboard", dashboard_exprs(), id="dashboard"),
        pytest.param("alerts", alert_exprs(), id="alerts"),
    ],
)
def test_every_expression_selects_only_exported_metrics(source: str, exprs: list[str]) -> None:
    known = exported_series() | PROMETHEUS_SERIES
    unknown = {name for expr in exprs for name in metric_names(expr)} - known
    assert unknown == set(), f"{source} uses metrics no process exports"
    assert all(metric_names(expr) for expr in exprs), "an expression selects no metric"


def test_the_checker_rejects_a_metric_name_that_does_not_exist() -> None:
    known = exported_series() | PROMETHEUS_SERIES
    assert metric_names("rate(crm_automation_event_total[5m])") - known == {
        "crm_automation_event_total"
    }


def test_the_dashboard_has_the_key_panels() -> None:
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    for name in (
        "up",
        "crm_automation_events_total",
        "crm_automation_actions_total",
        "crm_automation_timers_pending",
        "crm_automation_timer_firing_lag_seconds_bucket",
        "crm_automation_sink_writes_total",
        "crm_automation_sink_batch_duration_seconds_bucket",
        "crm_automation_end_to_end_latency_seconds_bucket",
        "crm_automation_dlq_messages_total",
        "crm_automation_consumer_lag",
    ):
        assert name in used, f"no panel shows {name}"


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian: apt-get install prometheus)"
    # Grafana's $__rate_interval becomes a real range; promtool parses recording rules.
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_panels_use_the_provisioned_prometheus_data_source() -> None:
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "crm-automation"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "crm-automation.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_operations_guide_lists_exactly_the_exported_metrics() -> None:
    families = set()
    for create in _FACTORIES:
        registry = CollectorRegistry()
        create(registry)
        families.update(
            family.name + {"counter": "_total", "info": "_info"}.get(family.type, "")
            for family in registry.collect()
            if family.name.startswith("crm_automation_")  # not process_*, python_info
        )
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(crm_automation_\w+)` \|", table, flags=re.MULTILINE))
    assert documented == families
