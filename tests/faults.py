"""`crm-automation` started with faults injected: `python -m tests.faults FAULT=SECONDS -- ARGS`.

The launcher installs each fault in this process, then runs the CLI's own `main` with
ARGS, so the process under test is the real one plus the fault. Faults:

- `scheduler-pause-before-commit=S`: the fire loop sleeps S seconds once its actions are
  confirmed, inside the fire transaction that marked the timers fired, before its commit:
  a process killed then must send them again, not lose them.
- `engine-seek-delay=S`: the engine's recovery seek after a rebalance ends S seconds late
  (partitions positioned, before Faust clears its stream queues): the window in which
  Faust's own order let its fetcher deliver records that the clear then dropped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from crm_automation import cli
from scheduler.fire import FireLoop
from streams import faust_compat

logger = logging.getLogger("tests.faults")  # run as __main__ (python -m)


def pause_before_fire_commit(seconds: float) -> None:
    publish = FireLoop._publish

    def publish_then_pause(self: FireLoop, *args: Any, **kwargs: Any) -> None:
        publish(self, *args, **kwargs)
        logger.warning("fault: pausing %.1fs before the fire commit", seconds)
        time.sleep(seconds)

    FireLoop._publish = publish_then_pause  # type: ignore[method-assign]


def delay_seek_end(seconds: float) -> None:
    async def hold() -> None:
        logger.warning("fault: holding the end of the recovery seek %.1fs", seconds)
        await asyncio.sleep(seconds)

    faust_compat.after_recovery_seek = hold


FAULTS: dict[str, Callable[[float], None]] = {
    "scheduler-pause-before-commit": pause_before_fire_commit,
    "engine-seek-delay": delay_seek_end,
}


def main(argv: Sequence[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: python -m tests.faults FAULT=SECONDS... -- ARGS")
    split = list(argv).index("--")
    for spec in argv[:split]:
        name, _, seconds = spec.partition("=")
        if name not in FAULTS:
            raise SystemExit(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        FAULTS[name](float(seconds))
    sys.argv = ["crm-automation", *argv[split + 1 :]]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
