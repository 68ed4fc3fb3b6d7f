"""Scenario 6: three engine workers on six partitions under load, joining and SIGKILLed.

Every join and every kill rebalances the engine group while events flow: the path on
which Faust dropped fetched records (streams/faust_compat.py). Nothing may be lost or
done twice, and the group's commits must reach the end of every partition.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from runtime import kafka_clients, topics
from runtime.settings import Settings
from tests.reliability.harness import (
    Fault,
    Load,
    Pipeline,
    random_moments,
    running_pipeline,
    sleep_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

RATE = 100
SECONDS = 45


@pytest.fixture
def six_partitions(stack: Any, settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    """The pipeline on topics of six partitions, one engine worker to begin with."""
    s = settings.model_copy(
        update={"topic_prefix": f"test-{uuid.uuid4().hex[:8]}.", "partitions": 6}
    )
    topics.create_topics(AdminClient(kafka_clients.admin_config(s)), s)
    with running_pipeline(s, tmp_path, stack.caldav_url) as running:
        yield running


def test_three_engine_workers_joining_and_killed_under_load_lose_and_duplicate_nothing(
    six_partitions: Pipeline, run_id: str
) -> None:
    pipeline = six_partitions
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    load = Load(pipeline.settings, run_id, seed).start(RATE, SECONDS)
    begin = time.monotonic()
    joins = random_moments(rng, 2, begin + 3, begin + 15)
    for worker, moment in zip(("engine#2", "engine#3"), joins, strict=True):
        sleep_until(moment)
        pipeline.start(worker)
        pipeline.faults.append(Fault(f"{worker} joins", time.time(), time.time()))
    kills = random_moments(rng, 3, begin + 18, begin + SECONDS - 3)
    for worker, moment in zip(("engine#2", "engine", "engine#3"), kills, strict=True):
        sleep_until(moment)
        pipeline.kill_and_restart(worker)
    load.wait()

    row = pipeline.finish(
        f"3 engine workers, 6 partitions: 2 joins, 3 SIGKILLs (seed {seed})", load
    )

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes
    assert row.found == row.expected
    assert pipeline.engine_lag() == 0, "the engine group's commits did not reach the end"
