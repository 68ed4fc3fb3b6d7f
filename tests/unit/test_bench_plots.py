"""bench/plots.py draws the published benchmark plots from a results dict."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).parents[2] / "bench"
MACHINE = {"cpus": 2, "load_avg_1m": 1.5}


def load_plots() -> ModuleType:
    """bench/ is scripts, not a package: load plots.py by path."""
    spec = importlib.util.spec_from_file_location("bench_plots", BENCH / "plots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_plots", module)
    spec.loader.exec_module(module)
    return module


def latency_run(rate: int, p50: float, complete: bool = True) -> dict[str, Any]:
    return {
        "rate_target": rate,
        "events": rate * 4,
        "arrived": rate * 4 if complete else rate,
        "complete": complete,
        "p50_ms": p50,
        "p95_ms": p50 * 2,
        "p99_ms": p50 * 3,
        "engine_p99_ms": p50,
    }


def series(svg: str) -> list[str]:
    return re.findall(r'<g id="(series-[^"]+)"', svg)


def test_latency_plot_has_its_axes_and_one_line_per_percentile(tmp_path: Path) -> None:
    plots = load_plots()
    result = {
        "seconds_per_rate": 4.0,
        "by_rate": {
            "500": latency_run(500, 120.0),
            "2000": latency_run(2000, 900.0, complete=False),
        },
        "command": {"quick": "True"},
        "machine": MACHINE,
        "at": "20261202T003000Z",
    }

    svg = plots.latency_vs_rate(result, tmp_path / "latency.svg").read_text()

    assert "events/s produced (target rate)" in svg
    assert "latency, occurred_at to row in Postgres (ms, log scale)" in svg
    assert series(svg) == [
        "series-p50_ms",
        "series-p95_ms",
        "series-p99_ms",
        "series-engine_p99_ms",
    ]
    assert "quick run 2026-12-02 00:30 UTC" in svg
    assert "not sustained (2,000 of 8,000)" in svg


def test_throughput_plot_has_the_engine_per_rule_count_and_the_floor(tmp_path: Path) -> None:
    plots = load_plots()
    result = {
        "events": 2000,
        "partitions": 6,
        "engine_by_rules": {
            str(n): {"events_per_s": rate, "executions_per_event": runs}
            for n, rate, runs in ((10, 3000.0, 0.06), (1000, 1300.0, 3.4), (10000, 1100.0, 3.4))
        },
        "compared": {"events": 20000},
        "f2": {"events_per_s": 3500.0},
        "command": {"quick": "True"},
        "machine": MACHINE,
        "at": "20261202T003000Z",
    }

    svg = plots.throughput_vs_rules(result, tmp_path / "engine.svg").read_text()

    assert "rules in the rules table" in svg
    assert "engine throughput (events/s)" in svg
    assert series(svg) == ["series-engine", "series-f2"]
    assert "10,000" in svg
    assert "3.40 rule runs/event" in svg


def test_the_same_results_draw_the_same_bytes(tmp_path: Path) -> None:
    plots = load_plots()
    result = {
        "seconds_per_rate": 4.0,
        "by_rate": {"500": latency_run(500, 120.0)},
        "machine": MACHINE,
        "at": "20261202T003000Z",
    }

    first = plots.latency_vs_rate(result, tmp_path / "a.svg").read_bytes()
    second = plots.latency_vs_rate(result, tmp_path / "b.svg").read_bytes()

    assert first == second
