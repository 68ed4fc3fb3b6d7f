"""Every benchmark scenario on one stack: a summary table, one JSON, optionally a regression check.

    .venv/bin/python bench/run_all.py [--quick] [--only engine,scheduler] [--check REF]

`make bench` runs it in full, `make bench-quick` with --quick (every scenario, small),
`make bench-check` with --quick --check bench/reference.json.

Starts one local stack (Kafka, Postgres, Radicale) under a temp home, unless all three
services are configured (CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS, _DATABASE_URL,
_CALDAV_URL), and runs each scenario script as a child pointed at it: each prints its own
table and writes bench/results/<scenario>-*.json. The ratios found in those files (keys
`ratio*` or `*_vs_*`, at any depth, plus each file's `ratios`) are collected into
bench/results/all-<stamp>.json. --check fails (exit 1) when a ratio named in the
reference file dropped by more than the reference's tolerance (25 %) below its value.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, stack_env, stack_settings, write_result  # noqa: E402

HERE = Path(__file__).parent
# name, script, extra arguments in quick mode, extra arguments in full mode.
SCENARIOS: list[tuple[str, str, list[str], list[str]]] = [
    ("engine", "engine_bench.py", ["--quick"], []),
    ("latency", "latency_bench.py", ["--quick"], []),
    # Full: 10,000,000 pending timers (issue 8), of which 100,000 fall due together.
    ("scheduler", "scheduler_bench.py", ["--quick"], ["--timers", "10000000", "--burst", "100000"]),
    ("sinks", "sink_bench.py", ["--quick"], []),
]


def ratios_in(value: Any, path: str = "") -> dict[str, float]:
    """Every ratio in a result file, by dotted path (list items by index)."""
    found: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "ratios" and isinstance(item, dict):
                for name, ratio in item.items():
                    if isinstance(ratio, int | float):
                        found[f"{path}.{name}" if path else name] = float(ratio)
            elif isinstance(item, int | float) and not isinstance(item, bool):
                if key.startswith("ratio") or "_vs_" in key:
                    found[sub] = float(item)
            elif key not in ("command", "args", "machine"):
                found.update(ratios_in(item, sub))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.update(ratios_in(item, f"{path}[{i}]"))
    return found


def run_scenario(name: str, script: str, extra: list[str], env: dict[str, str]) -> dict[str, Any]:
    # Only this scenario's files: others may write bench/results/ at the same time.
    pattern = f"{name}-*.json"
    before = set(RESULTS.glob(pattern)) if RESULTS.exists() else set()
    print(f"\n=== {name}: {script} {' '.join(extra)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(HERE / script), *extra], env=env, check=False
    )
    seconds = time.perf_counter() - started
    new = sorted(set(RESULTS.glob(pattern)) - before, key=lambda p: p.stat().st_mtime)
    outcome: dict[str, Any] = {
        "script": script,
        "exit_code": done.returncode,
        "seconds": round(seconds, 1),
        "results": [str(p.relative_to(HERE.parent)) for p in new],
        "ratios": {},
    }
    for path in new:
        outcome["ratios"].update(
            {f"{name}.{k}": v for k, v in ratios_in(json.loads(path.read_text())).items()}
        )
    return outcome


# The targets of BENCHMARKS.md: name, scenario, dotted key in its result file, goal,
# and whether the value must be at least (">=") or below ("<") the goal.
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("engine_vs_f2", "engine", "engine_vs_f2", 0.5, ">="),
    ("latency_p99_ms_at_500", "latency", "p99_ms_at_500", 250.0, "<"),
    ("scheduler_fire_vs_bare", "scheduler", "fire_vs_bare", 0.5, ">="),
    ("scheduler_lag_p99_s", "scheduler", "lag_p99_s", 1.0, "<"),
    ("scheduler_ingest_vs_copy", "scheduler", "ingest_vs_copy", 0.5, ">="),
    ("postgres_sink_vs_copy", "sinks", "postgres.ratio_sink_to_copy", 0.5, ">="),
    # Where the machine has the cores: `cpu_count` below says what it had.
    ("scheduler_two_vs_one_process", "scheduler", "two_vs_one_process", 1.5, ">="),
]
# Figures without a goal: name, scenario, dotted key in its result file.
REPORTED: list[tuple[str, str, str]] = [
    # The latency bench's warm-up at 500 events/s (cold broker and processes), apart
    # from the steady-state p99 the target reads.
    ("latency_warmup_p99_ms_at_500", "latency", "warmup_p99_ms_at_500"),
    ("scheduler_burst_drain_timers_per_s", "scheduler", "fire_rate"),
    ("scheduler_process_rss_mb", "scheduler", "processes_1_rss_mb"),
    ("scheduler_cpu_count", "scheduler", "cpu_count"),
]


def value_of(outcomes: dict[str, dict[str, Any]], scenario: str, key: str) -> Any:
    """A value (dotted key) of a scenario's newest result file; None when it has none."""
    files = outcomes.get(scenario, {}).get("results", [])
    if not files:
        return None
    value: Any = json.loads((HERE.parent / files[-1]).read_text())
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def targets(outcomes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each target's value (from its scenario's newest result file), goal, and verdict."""
    found: dict[str, dict[str, Any]] = {}
    for name, scenario, key, goal, sense in TARGETS:
        value = value_of(outcomes, scenario, key)
        if not isinstance(value, int | float):
            continue
        met = value >= goal if sense == ">=" else value < goal
        found[name] = {"value": value, "goal": f"{sense} {goal:g}", "met": met}
    return found


def reported(outcomes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The figures BENCHMARKS.md reports next to the targets, without a goal."""
    found = {}
    for name, scenario, key in REPORTED:
        value = value_of(outcomes, scenario, key)
        if isinstance(value, int | float):
            found[name] = value
    return found


def check(ratios: dict[str, float], reference_path: Path) -> list[str]:
    """Regressions against the reference: ratios below (1 - tolerance) x recorded, or gone."""
    reference = json.loads(reference_path.read_text())
    tolerance = float(reference.get("tolerance", 0.25))
    failures = []
    print(f"\n{'ratio':<52} {'now':>7} {'recorded':>9} {'floor':>7}")
    for name, recorded in reference["ratios"].items():
        floor = recorded * (1 - tolerance)
        now = ratios.get(name)
        shown = "missing" if now is None else f"{now:.3f}"
        verdict = "ok" if now is not None and now >= floor else "REGRESSION"
        print(f"{name:<52} {shown:>7} {recorded:>9.3f} {floor:>7.3f}  {verdict}")
        if verdict != "ok":
            failures.append(f"{name}: {shown} < {floor:.3f} (recorded {recorded:.3f})")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every scenario in quick mode")
    parser.add_argument("--only", help="scenario names, comma-separated")
    parser.add_argument("--check", type=Path, help="reference ratios JSON (bench/reference.json)")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else {s[0] for s in SCENARIOS}
    started = time.perf_counter()
    outcomes: dict[str, dict[str, Any]] = {}
    with stack_settings(lambda m: print(m, flush=True)) as settings:
        stack_seconds = time.perf_counter() - started
        env = stack_env(settings)
        for name, script, quick, full in SCENARIOS:
            if name not in wanted:
                continue
            if not (HERE / script).exists():
                print(f"\n=== {name}: {script} not found, skipped", flush=True)
                outcomes[name] = {"script": script, "exit_code": None, "skipped": True}
                continue
            outcomes[name] = run_scenario(name, script, quick if args.quick else full, env)
    total = time.perf_counter() - started
    ratios: dict[str, float] = {}
    for outcome in outcomes.values():
        ratios.update(outcome.get("ratios", {}))

    print(f"\n{'scenario':<12} {'exit':>5} {'seconds':>8}  results")
    for name, o in outcomes.items():
        shown = "skip" if o.get("skipped") else str(o["exit_code"])
        files = ", ".join(o.get("results", []))
        print(f"{name:<12} {shown:>5} {o.get('seconds', 0):>8.1f}  {files}")
    print(f"\n{'ratio':<52} {'value':>7}")
    for name, value in sorted(ratios.items()):
        print(f"{name:<52} {value:>7.3f}")
    met = targets(outcomes)
    print(f"\n{'target':<32} {'value':>10} {'goal':>10}  verdict")
    for name, t in met.items():
        verdict = "met" if t["met"] else "MISSED"
        print(f"{name:<32} {t['value']:>10.3f} {t['goal']:>10}  {verdict}")
    figures = reported(outcomes)
    for name, value in figures.items():
        print(f"{name:<32} {value:>10,.0f}")
    print(f"\nstack start {stack_seconds:.0f} s, whole run {total:.0f} s")
    summary = {
        "targets": met,
        "reported": figures,
        "mode": "quick" if args.quick else "full",
        "seconds": round(total, 1),
        "stack_seconds": round(stack_seconds, 1),
        "scenarios": outcomes,
        "ratios": ratios,
    }
    failures = [
        f"{n}: exit code {o['exit_code']}" for n, o in outcomes.items() if o.get("exit_code")
    ]
    if args.check is not None:
        failures += check(ratios, args.check)
        summary["check"] = {"reference": str(args.check), "failures": failures}
    path = write_result("all-quick" if args.quick else "all", summary, vars(args))
    print(f"wrote {path}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
