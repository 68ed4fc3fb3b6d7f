"""The short reliability scenario of the normal suite: the engine SIGKILLed once under
load, with duplicated events, loses and duplicates no action (make test)."""

from __future__ import annotations

import random
import time

import pytest

from tests.reliability.harness import Load, Pipeline, sleep_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_an_engine_killed_under_load_with_duplicated_events_loses_and_duplicates_no_action(
    pipeline: Pipeline, run_id: str
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    load = Load(pipeline.settings, run_id, seed).start(100, 20)
    sleep_until(time.monotonic() + rng.uniform(6, 12))
    pipeline.kill_and_restart("engine")
    for event in rng.sample(load.delivered, 100):
        load.send(event)
    load.wait()

    row = pipeline.finish(f"quick: SIGKILL engine x1 + 100 duplicates (seed {seed})", load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes
    assert row.found == row.expected > 2000
