"""Peak memory (VmHWM) of each processor under `crm-automation run --demo`, for the
resource requests of deploy/kubernetes.

    .venv/bin/python bench/process_rss.py [--seconds 60]

Runs the main job in a fresh CRM_AUTOMATION_HOME (its own local stack), reads
/proc/<pid>/status of every processor once a second and prints each one's peak
resident memory (Linux only).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crm_automation.supervisor import processors
from runtime.settings import Settings

# The processors `crm-automation run` starts with the default settings.
PROCESSORS = {p.name: list(p.args) for p in processors(Settings())}


def children() -> dict[str, int]:
    """pid of each running processor, from /proc/*/cmdline."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        for name, args in PROCESSORS.items():
            if any(w.endswith("crm-automation") for w in words) and words[-len(args) :] == args:
                found[name] = int(entry.name)
    return found


def peak_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("crm-automation"))
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "CRM_AUTOMATION_HOME": home}
        run = subprocess.Popen(  # noqa: S603 - our own CLI
            [cli, "run", "--demo", "--duration", str(args.seconds)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while run.poll() is None:
                for name, pid in children().items():
                    try:
                        peaks[name] = max(peaks.get(name, 0.0), peak_mb(pid))
                    except OSError:
                        pass  # exited between the listing and the read
                time.sleep(1.0)
        finally:
            if run.poll() is None:
                run.terminate()
            run.wait()
            subprocess.run([cli, "stack", "down"], env=env, capture_output=True, check=False)  # noqa: S603
    for name in PROCESSORS:
        print(f"{name:<14} peak RSS {peaks.get(name, 0.0):6.0f} MB")


if __name__ == "__main__":
    main()
