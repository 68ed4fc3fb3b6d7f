"""Instructions per event of one stage of the engine's pure work, counted by callgrind.

    .venv/bin/python bench/instructions.py {evaluate,encode,decode,handle} [--events E]

Runs `bench/core_bench.py --only STAGE` under `valgrind --tool=callgrind` twice, with 1
and with 3 timed passes, and prints (instructions of the second - of the first) / 2 / E:
the start-up, the workload's preparation and the warm-up pass cancel out, and what is
left is exactly two passes of the stage. Deterministic (PYTHONHASHSEED=0), where the
timings of this machine move by ±20-30 % between identical runs: the instrument for a
lever too small to show through that. Needs valgrind (`apt-get install valgrind`); a few
minutes at the default 300 events.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def instructions(stage: str, events: int, repeat: int) -> int:
    """The instructions callgrind counts for one core_bench run."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(HERE / "core_bench.py"),
        "--events",
        str(events),
        "--only",
        stage,
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind reported no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("evaluate", "encode", "decode", "handle"))
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    one = instructions(args.stage, args.events, 1)
    three = instructions(args.stage, args.events, 3)
    per_event = (three - one) / 2 / args.events
    print(
        f"{args.stage}: {per_event / 1e6:.3f} M instructions per event"
        f" ({args.events:,} events; {three:,} - {one:,} instructions over two passes)"
    )


if __name__ == "__main__":
    main()
