"""Scenario 3: a worker stalled (SIGSTOP) past its session timeout, then resumed (SIGCONT)."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.reliability.harness import Fault, Load, Pipeline, sleep_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

# librdkafka's session.timeout.ms is 45 s: a longer stall makes the group hand the
# stalled instance's partitions to its twin, and the stalled one wakes up mid-batch.
STALL_SECONDS = 50


def test_a_stalled_sink_and_scheduler_resume_and_their_late_writes_are_absorbed(
    pipeline: Pipeline, run_id: str
) -> None:
    pipeline.start("sink-postgres#2", "scheduler#2", "sink-calendar#2")
    load = Load(pipeline.settings, run_id, random.randrange(1 << 30)).start(100, 70)
    sleep_until(time.monotonic() + 10)
    started = time.time()
    stalled = ("sink-postgres", "scheduler", "sink-calendar")
    for name in stalled:
        pipeline.signal(name, signal.SIGSTOP)
    sleep_until(time.monotonic() + STALL_SECONDS)
    for name in stalled:
        pipeline.signal(name, signal.SIGCONT)
    pipeline.faults.append(Fault("SIGSTOP sinks+scheduler 50 s", started, time.time()))
    load.wait()

    row = pipeline.finish("SIGSTOP sink-postgres, scheduler, sink-calendar 50 s", load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes
