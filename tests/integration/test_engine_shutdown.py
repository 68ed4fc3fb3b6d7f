"""An engine stopped with SIGTERM in the middle of a backlog finishes the batch it is on:
its outputs, the items' new states and the acknowledgements. So the engine that takes
over evaluates no event a second time, and a replay of every event is recognised as
duplicates by the items' states. This matters most when the second engine is a new
release whose ids differ (docs/architecture.md, "Replays"): an event evaluated again
would get the new ids, and the sinks would not recognise its effects."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from automation_core.model import Execution
from runtime import codec, topics
from runtime.settings import Settings
from streams.app import group_id
from tests.helpers import wait_for
from tests.integration.support import TopicReader, run_cli, start_cli, stop_process
from tests.integration.test_engine_liveness import assert_every_event_acted_on, send_backlog
from tests.reliability.harness import RULES, Load, group_lag, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BACKLOG = 4_000


def test_an_engine_stopped_mid_backlog_finishes_its_batch_and_its_successor_repeats_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    assert run_cli(settings, tmp_path, "rules", "apply", str(path)).returncode == 0
    events = send_backlog(settings, BACKLOG)
    progress = TopicReader(settings, topics.EXECUTIONS)
    engine = start_cli(settings, tmp_path, "engine")
    try:
        progress.until(500, timeout=120)  # the engine is in the middle of the backlog
    finally:
        progress.close()
        assert stop_process(engine) == 0

    successor = start_cli(settings, tmp_path, "engine")
    try:
        assert_every_event_acted_on(settings, events)
        replay = Load(settings, uuid.uuid4().hex[:6], seed=1)
        for event in events:
            replay.send(event)
        replay.wait()
        wait_for(
            lambda: group_lag(settings, group_id(settings)) == 0,
            timeout=120,
            interval=1,
            what="the replay read to its end",
        )
    finally:
        assert stop_process(successor) == 0

    executions = [
        codec.decode_as(m.value(), Execution) for m in read_topic(settings, topics.EXECUTIONS)
    ]
    evaluated = Counter((e.item_key, e.event_id, e.rule_id) for e in executions)
    twice = [key for key, count in evaluated.items() if count > 1]
    assert not twice, f"{len(twice)} rule executions evaluated again, e.g. {twice[:3]}"
    assert {e.event_id for e in executions} >= {e.event_id for e in events}
    # Both engines ran their agent on the configured event loop (uvloop by default).
    logs = [log.read_text() for log in tmp_path.glob("engine-*.log")]
    assert len(logs) == 2
    assert all("engine agent started on uvloop" in log for log in logs), logs[0][-2000:]
