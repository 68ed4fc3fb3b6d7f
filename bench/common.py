"""Shared helpers of the benchmarks: one stack for a run, results files, py-spy profiles."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from crm_automation.stack import Stack
from runtime.settings import Settings

RESULTS = Path(__file__).parent / "results"
CLI = str(Path(sys.executable).with_name("crm-automation"))
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


@contextlib.contextmanager
def stack_settings(log: Any = print) -> Iterator[Settings]:
    """Settings of a running stack: the configured services, else a local stack of our own.

    With CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS and CRM_AUTOMATION_DATABASE_URL set (as
    bench/run_all.py sets them for its scenarios) nothing is started; otherwise a local
    stack is started under a temp home and stopped on exit.
    """
    configured = Settings()
    if configured.kafka_bootstrap_servers and configured.database_url:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        stack = Stack(configured.model_copy(update={"home": Path(tmp) / "stack"}))
        try:
            log("starting the local stack ...")
            stack.up()
            yield stack.resolved_settings()
        finally:
            stack.down()


def stack_env(s: Settings) -> dict[str, str]:
    """The environment that points a child process at exactly the services in `s`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_AUTOMATION_")}
    env.update(
        {
            "CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers or "",
            "CRM_AUTOMATION_DATABASE_URL": (
                s.database_url.get_secret_value() if s.database_url else ""
            ),
            "CRM_AUTOMATION_CALDAV_URL": s.caldav_url or "",
            "CRM_AUTOMATION_TOPIC_PREFIX": s.topic_prefix,
            "CRM_AUTOMATION_PARTITIONS": str(s.partitions),
        }
    )
    return env


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile of `values` (the value at that rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def start_profiler(pid: int, out: Path, idle: bool = False) -> subprocess.Popen[bytes]:
    """`py-spy record` attached to `pid`: a flame graph for `.svg`, else raw stacks.

    Stop it with `stop_profiler` (SIGINT) before the profiled process ends, so it writes
    the file. Raw (collapsed) stacks are what `python bench/common.py FILE` summarises.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = "flamegraph" if out.suffix == ".svg" else "raw"
    # --nonblocking: sampling never pauses the process, so throughput stays comparable.
    command = [PY_SPY, "record", "--nonblocking", "-r", "100", "-f", fmt, "-o", str(out)]
    if idle:  # waiting threads too: where the wall time goes, not only the CPU
        command.append("--idle")
    return subprocess.Popen(  # noqa: S603
        [*command, "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is None or profiler.poll() is not None:
        return
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


def start_process(
    command: list[str], env: dict[str, str], work: Path, name: str
) -> subprocess.Popen[bytes]:
    """`command` in the background in `work`, its output in `work/<name>.log`."""
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, env=env, cwd=work, stdout=log, stderr=log)  # noqa: S603
    log.close()
    return process


def start_processes(
    command: list[str], env: dict[str, str], work: Path, name: str, ports: dict[str, list[int]]
) -> list[subprocess.Popen[bytes]]:
    """One `command` per port in `ports` (a setting's name -> a port for each process),
    each with a home of its own (`work/<name>-<n>`, its output in `<name>.log` there)."""
    count = len(next(iter(ports.values())))
    running = []
    for n in range(count):
        home = work / f"{name}-{n}"
        home.mkdir()
        child_env = {
            **env,
            "CRM_AUTOMATION_HOME": str(home),
            **{setting: str(values[n]) for setting, values in ports.items()},
        }
        running.append(start_process(command, child_env, home, name))
    return running


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited after 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 60) -> None:
    """Until the process's /readyz on `port` answers 200; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process {process.pid} exited with {process.returncode}"
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        time.sleep(0.1)
    raise TimeoutError(f"process {process.pid} on port {port} not ready after {timeout} s")


def metric_families(port: int) -> list[Any]:
    """The metric families a process exposes on its metrics port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310
        return list(text_string_to_metric_families(r.read().decode()))


def sample_sums(families: list[Any]) -> dict[str, float]:
    """Each sample name's value summed over its labels."""
    sums: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_result(name: str, result: dict[str, Any], argv: dict[str, Any]) -> Path:
    """bench/results/<name>-<UTC stamp>.json with the command and the machine."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    full = {
        **result,
        "command": argv,
        "machine": machine(),
        "at": stamp,
    }
    path.write_text(json.dumps(full, indent=2, default=str) + "\n")
    return path


def machine() -> dict[str, Any]:
    """What the figures were measured on (cores, load, model): absolute rates depend on it."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_avg_1m": os.getloadavg()[0],
    }


def _stacks(collapsed: Path) -> Iterator[tuple[str, int]]:
    """(stack, samples) of each line of a py-spy `--format raw` file; a line py-spy cut
    short when it was stopped is left out."""
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack, int(count_text)


def top_frames(collapsed: Path, n: int = 25) -> list[tuple[str, float, float]]:
    """(function, self share, inclusive share) from a py-spy `--format raw` file."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for stack, count in _stacks(collapsed):
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return [(f, own[f] / samples, total[f] / samples) for f, _ in own.most_common(n)]


def stack_share(collapsed: Path, pattern: str) -> tuple[int, int]:
    """(samples whose stack matches the regular expression `pattern`, all samples)."""
    matching = samples = 0
    for stack, count in _stacks(collapsed):
        samples += count
        matching += count if re.search(pattern, stack) else 0
    return matching, samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Read a raw py-spy profile (py-spy record -f raw): its hottest frames, "
        "or the share of samples whose stack matches a regular expression."
    )
    parser.add_argument("profile", type=Path, help="a py-spy --format raw file")
    parser.add_argument("top", nargs="?", type=int, default=25, help="frames to list")
    parser.add_argument(
        "--share", metavar="REGEX", help="print the share of samples whose stack matches REGEX"
    )
    args = parser.parse_args()
    if not args.profile.is_file():
        parser.error(f"no such profile: {args.profile}")
    if args.share is not None:
        matching, samples = stack_share(args.profile, args.share)
        print(f"{matching:,} of {samples:,} samples ({matching / max(samples, 1):.1%})")
        return
    for frame, mine, incl in top_frames(args.profile, args.top):
        print(f"{mine:6.1%} {incl:6.1%}  {frame}")


if __name__ == "__main__":
    main()
