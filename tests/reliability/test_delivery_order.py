"""Scenario 4: duplicated events, the whole input replayed from offset 0, events out of order."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from automation_core.model import StageChanged
from runtime import codec, topics
from tests.reliability.harness import Fault, Load, Pipeline, read_topic, sleep_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]


def test_duplicates_a_replay_from_offset_zero_and_reordered_events_create_each_action_once(
    pipeline: Pipeline, run_id: str
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    load = Load(pipeline.settings, run_id, seed).start(100, 30)
    for _ in range(10):
        sleep_until(time.monotonic() + 2.5)
        for event in rng.sample(load.delivered, min(20, len(load.delivered))):
            load.send(event)  # the same event id again
        for n in range(10):
            # An item's later event (WON) arrives before its earlier one (APPROVAL).
            now = datetime.now(UTC)
            item = f"{run_id}-late-{rng.randrange(1 << 40)}-{n}"
            load.send(load.new_event("WON", item_id=item, at=now))
            load.send(load.new_event("APPROVAL", item_id=item, at=now - timedelta(minutes=1)))
    load.wait()

    started = time.time()
    replayed = 0
    for message in read_topic(pipeline.settings, topics.STAGE_CHANGES):
        event = codec.decode(message.value() or b"")
        if isinstance(event, StageChanged) and event.event_id.startswith(f"evt-{run_id}-"):
            load.send(event)
            replayed += 1
    load.wait()
    pipeline.faults.append(
        Fault(f"replay of {replayed} events from offset 0", started, time.time())
    )

    row = pipeline.finish("duplicates + replay from 0 + out of order", load)

    assert replayed > 2000
    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes
