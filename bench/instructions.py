"""Instructions per event of one stage of the engine's pure work, counted by callgrind.

    .venv/bin/python bench/instructions.py {evaluate,encode,decode,handle} [--events E]
        [--passes K]

Runs `bench/core_bench.py --only STAGE` under `valgrind --tool=callgrind` twice, side by
side, with 1 and with 1 + K timed passes, and prints (instructions of the second - of the
first) / K / E: the start-up, the workload's preparation and the warm-up pass cancel out,
and what is left is exactly K passes of the stage. Nearly deterministic (PYTHONHASHSEED=0,
no address randomisation), where the timings of this machine move by ±20-30 % between
identical runs: the instrument for a lever too small to show through that. Two runs of
the same command still differ a little in their start-up, which the K passes spread
thin: at 300 events and K=2 two runs of one commit read 0.618 and 0.633 M instructions
per event for evaluate, hence K=10. Needs
valgrind (`apt-get install valgrind`); a few minutes at the defaults.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def instructions(stage: str, events: int, repeat: int) -> int:
    """The instructions callgrind counts for one core_bench run."""
    command = [
        # Without address randomisation: the same run counts the same instructions (with
        # it, addresses moved hash orders and allocations, and the count by a few %).
        *(["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []),
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
    parser.add_argument("--passes", type=int, default=10, help="K: the passes counted")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        one, more = pool.map(
            lambda repeat: instructions(args.stage, args.events, repeat), (1, 1 + args.passes)
        )
    per_event = (more - one) / args.passes / args.events
    print(
        f"{args.stage}: {per_event / 1e6:.3f} M instructions per event"
        f" ({args.events:,} events; {more:,} - {one:,} instructions over {args.passes} passes)"
    )


if __name__ == "__main__":
    main()
