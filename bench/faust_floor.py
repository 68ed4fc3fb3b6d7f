"""The engine's Faust app around an agent that does no work: what Faust's own consume
path costs per event (fetch, conductor, stream, take_events batches, acks, commits).

    CRM_AUTOMATION_...=... .venv/bin/python bench/faust_floor.py --expected N --out FILE

Run by bench/engine_bench.py as a process of its own, with the engine's settings (from
the environment, as `crm-automation engine` gets them) on the events the engine and the
floors read: the same Faust app (`streams.app.faust_app`), event loop, batch size and
window, and recovery seek, under an app id (consumer group) of its own. The agent takes
each batch as the engine's does and touches each event's key and value; nothing is
decoded, evaluated, produced or stored. When N events have passed it writes
{"events", "elapsed_s", "events_per_s", "cpu_us_per_event"} (from its first batch to its
last, CPU of every thread of the process) to FILE and stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import faust

from runtime import topics
from runtime.settings import Settings
from streams.app import faust_app, use_event_loop
from streams.faust_compat import install_recovery_seek


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    s = Settings()
    use_event_loop(s.engine_event_loop)
    app = faust_app(s, f"{s.topic_prefix}bench-faust-floor")
    events_topic_name = s.topic(topics.STAGE_CHANGES)
    events_topic = app.topic(events_topic_name, key_type=bytes, value_type=bytes)

    @app.on_rebalance_complete.connect
    async def seek_as_the_engine_does(sender: Any, /, *a: Any, signal: Any, **k: Any) -> None:
        install_recovery_seek(app.consumer, events_topic_name)

    done = 0
    first = cpu_at_first = 0.0
    touched = 0

    @app.agent(events_topic)
    async def drain(stream: Any) -> None:
        nonlocal done, first, cpu_at_first, touched
        async for batch in stream.take_events(s.batch_size, within=s.engine_batch_window_seconds):
            if not first:
                first, cpu_at_first = time.perf_counter(), time.process_time()
            for event in batch:
                message = event.message
                touched += len(message.key or b"") + len(message.value or b"")
            done += len(batch)
            if done >= args.expected:
                elapsed = time.perf_counter() - first
                cpu = time.process_time() - cpu_at_first
                result = {
                    "events": done,
                    "elapsed_s": elapsed,
                    "events_per_s": done / elapsed,
                    "cpu_us_per_event": cpu / done * 1e6,
                    "bytes": touched,
                }
                args.out.write_text(json.dumps(result))
                os.kill(os.getpid(), signal.SIGTERM)  # Faust's worker stops on it

    worker = faust.Worker(app, loglevel=logging.WARNING, override_logging=False, quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
