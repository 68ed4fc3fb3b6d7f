"""Plots of benchmark results: end-to-end latency against rate, engine throughput against rules.

    .venv/bin/python bench/plots.py [--latency FILE] [--engine FILE] [--out DIR]

`make plots` runs it: it redraws docs/img/bench-latency.svg and docs/img/bench-engine-rules.svg
from the newest bench/results/latency-*.json and engine-*.json (or the files given), without
running a benchmark. bench/latency_bench.py and bench/engine_bench.py draw the same plot next
to each results file they write.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

RESULTS = Path(__file__).parent / "results"
PUBLISHED = Path(__file__).parent.parent / "docs" / "img"
LATENCY_TARGET_MS = 250.0
"""BENCHMARKS.md's target: p99 end to end below 250 ms at 500 events/s."""

# The same bytes for the same results: no timestamp, fixed element ids, text kept as text
# (so the published SVG diffs cleanly and its labels can be searched and tested).
_SVG = {"svg.hashsalt": "crm-automation", "svg.fonttype": "none", "font.size": 10.0}


def latency_vs_rate(result: dict[str, Any], out: Path) -> Path:
    """p50/p95/p99 end to end (and the engine's p99) per target rate; SVG or PNG by suffix."""
    runs = sorted(result["by_rate"].values(), key=lambda r: r["rate_target"])
    rates = [r["rate_target"] for r in runs]
    with matplotlib.rc_context(_SVG):
        fig = Figure(figsize=(7.0, 4.2))
        ax = fig.add_subplot()
        for key, label, style in (
            ("p50_ms", "p50", "o-"),
            ("p95_ms", "p95", "s-"),
            ("p99_ms", "p99", "^-"),
            ("engine_p99_ms", "engine's share, p99", "v--"),
        ):
            values = [r.get(key) or 0.0 for r in runs]
            (line,) = ax.plot(rates, values, style, label=label)
            line.set_gid(f"series-{key}")
        target = ax.axhline(
            LATENCY_TARGET_MS, color="grey", linestyle=":", label="target p99 at 500/s"
        )
        target.set_gid("target")
        for r in runs:
            if not r.get("complete", True):
                ax.annotate(
                    f"not sustained ({r['arrived']:,} of {r['events']:,})",
                    (r["rate_target"], r["p99_ms"]),
                    textcoords="offset points",
                    xytext=(-10, 8),
                    ha="right",
                    fontsize=8,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(rates, [f"{r:,}" for r in rates])
        # Log scale, read as plain milliseconds at 1-2-5 steps.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.minorticks_off()
        return _finish(
            fig,
            ax,
            "events/s produced (target rate)",
            "latency, occurred_at to row in Postgres (ms, log scale)",
            _caption(result, f"{result['seconds_per_rate']:g} s per rate"),
            "upper left",
            out,
        )


def throughput_vs_rules(result: dict[str, Any], out: Path) -> Path:
    """The engine's events/s per rule count (log axis), with the F2 floor of the same run."""
    by_rules = sorted(result["engine_by_rules"].items(), key=lambda kv: int(kv[0]))
    counts = [int(n) for n, _run in by_rules]
    rates = [run["events_per_s"] for _n, run in by_rules]
    with matplotlib.rc_context(_SVG):
        fig = Figure(figsize=(7.0, 4.2))
        ax = fig.add_subplot()
        (line,) = ax.plot(counts, rates, "o-", label=f"engine, {result['events']:,} events")
        line.set_gid("series-engine")
        for n, run in by_rules:
            ax.annotate(
                f"{run['executions_per_event']:.2f} rule runs/event",
                (int(n), run["events_per_s"]),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        if "f2" in result:
            floor = ax.axhline(
                result["f2"]["events_per_s"],
                color="grey",
                linestyle=":",
                label=f"F2 floor (no rule evaluation), {result['compared']['events']:,} events",
            )
            floor.set_gid("series-f2")
        ax.set_xscale("log")
        ax.set_xticks(counts, [f"{n:,}" for n in counts])
        ax.minorticks_off()
        ax.margins(x=0.12)  # room for the outer points' labels
        ax.set_ylim(bottom=0, top=max([*rates, result.get("f2", {}).get("events_per_s", 0)]) * 1.2)
        return _finish(
            fig,
            ax,
            "rules in the rules table",
            "engine throughput (events/s)",
            _caption(result, f"{result['partitions']} partitions"),
            "lower left",
            out,
        )


def _finish(
    fig: Figure, ax: Any, xlabel: str, ylabel: str, title: str, legend: str, out: Path
) -> Path:
    """Labels, caption, grid and legend as every plot has them; then the file."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc=legend)
    fig.tight_layout()
    return _save(fig, out)


def _caption(result: dict[str, Any], detail: str) -> str:
    """What the figures were measured on: mode, time, cores and load (they move with it)."""
    command = result.get("command", {})
    mode = "quick run" if str(command.get("quick")) == "True" else "run"
    at = result.get("at", "")
    when = f"{at[:4]}-{at[4:6]}-{at[6:8]} {at[9:11]}:{at[11:13]} UTC" if len(at) >= 13 else at
    m = result.get("machine", {})
    where = f"{m.get('cpus', '?')} CPUs, load {m.get('load_avg_1m', 0):.1f} at the end"
    return f"{mode} {when}, {detail}; {where}"


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    # No date and no matplotlib version: the same results give the same file.
    metadata = {"Date": None, "Creator": "bench/plots.py"} if out.suffix == ".svg" else {}
    fig.savefig(out, metadata=metadata)
    return out


def latest(name: str) -> Path | None:
    """The newest bench/results/<name>-<stamp>.json (stamps sort by time)."""
    found = sorted(
        p for p in RESULTS.glob(f"{name}-*.json") if p.name[len(name) + 1 : len(name) + 2].isdigit()
    )
    return found[-1] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=Path, help="a latency results file (default: newest)")
    parser.add_argument("--engine", type=Path, help="an engine results file (default: newest)")
    parser.add_argument("--out", type=Path, default=PUBLISHED)
    args = parser.parse_args()
    drawn = 0
    for given, name, draw, file_name in (
        (args.latency, "latency", latency_vs_rate, "bench-latency.svg"),
        (args.engine, "engine", throughput_vs_rules, "bench-engine-rules.svg"),
    ):
        source = given or latest(name)
        if source is None:
            print(f"no bench/results/{name}-*.json: run bench/{name}_bench.py first")
            continue
        path = draw(json.loads(source.read_text()), args.out / file_name)
        print(f"drew {path} from {source}")
        drawn += 1
    if not drawn:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
