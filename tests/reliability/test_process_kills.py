"""Scenario 1: SIGKILL of each processor, three times at random moments under load."""

from __future__ import annotations

import random
import time

import pytest

from tests.reliability.harness import Load, Pipeline, random_moments, sleep_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

RATE = 100
SECONDS = 30


@pytest.mark.parametrize("name", ["engine", "scheduler", "sink-postgres", "sink-calendar"])
def test_a_processor_killed_three_times_under_load_loses_and_duplicates_no_action(
    pipeline: Pipeline, run_id: str, name: str
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    load = Load(pipeline.settings, run_id, seed).start(RATE, SECONDS)
    begin = time.monotonic()
    for moment in random_moments(rng, 3, begin + 3, begin + SECONDS - 3):
        sleep_until(moment)
        pipeline.kill_and_restart(name)
    load.wait()

    row = pipeline.finish(f"SIGKILL {name} x3 (seed {seed})", load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes
    assert row.found == row.expected
