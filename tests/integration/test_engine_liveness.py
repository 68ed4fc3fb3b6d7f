"""An engine started on a backlog acts on every event and its commits reach the end.

The end of the seek after a rebalance is held for two seconds (the fault
`engine-seek-delay`, tests/faults.py): the window in which Faust's own order let its fetcher
deliver records that its queue clear then dropped. Without the fix in
`streams/faust_compat.py` the engine stalled here every time: the dropped block was
never acted on and the group's commits stood still behind it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from automation_core.evaluate import rule_index_from
from automation_core.model import Action, StageChanged
from automation_core.rules_file import validate_rules_file
from automation_core.simulate import simulate
from runtime import codec, topics
from runtime.settings import Settings
from runtime.watchdog import EXIT_STALLED
from streams.app import group_id
from tests.helpers import wait_for
from tests.integration.support import (
    TopicReader,
    run_cli,
    set_max_message_bytes,
    start_cli,
    stop_process,
)
from tests.reliability.harness import RULES, Load, group_lag, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

BACKLOG = 16_000
"""More than the engine works through while the seek is held plus a full stream queue, so
the queue Faust clears is full then: the fetcher fills it to ~3,300 events (Faust's
`stream_buffer_maxsize` of 4,096 over the queue's pressure ratio of 1.25) and the engine
works through a few thousand in the 2 s hold. Without the fix, on 2 CPUs, 8,000 let a new
group's engine finish and 12,000 stalled it; 16,000 keeps a margin for faster machines,
where the engine gets further during the hold (a larger backlog only keeps the queue
fuller at the clear)."""


def immediate_actions(events: list[StageChanged]) -> set[str]:
    rules = validate_rules_file(RULES)
    index = rule_index_from(rules.rules)
    steps = simulate(events, index)
    return {action.action_id for step in steps for action in step.decision.actions}


def send_backlog(settings: Settings, count: int) -> list[StageChanged]:
    load = Load(settings, uuid.uuid4().hex[:6], seed=count)
    for _ in range(count):
        load.send(load.new_event())
    load.wait()
    return load.delivered


def assert_every_event_acted_on(settings: Settings, events: list[StageChanged]) -> None:
    engine_group = group_id(settings)
    wait_for(
        lambda: group_lag(settings, engine_group) == 0,
        timeout=120,
        interval=1,
        what="the engine's committed offsets at the end of every partition",
    )
    emitted = {
        codec.decode_as(m.value(), Action).action_id for m in read_topic(settings, topics.ACTIONS)
    }
    missing = immediate_actions(events) - emitted
    assert not missing, f"{len(missing)} actions never emitted"


@pytest.fixture
def rules_applied(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    result = run_cli(settings, tmp_path, "rules", "apply", str(path))
    assert result.returncode == 0, result.stderr
    return settings


def engine_acts_on_every_event(
    settings: Settings,
    tmp_path: Path,
    events: list[StageChanged],
    faults: Sequence[str] = (),
    **extra: str,
) -> None:
    """Start an engine, see every event acted on and committed, stop it cleanly."""
    engine = start_cli(settings, tmp_path, "engine", faults=faults, **extra)
    try:
        assert_every_event_acted_on(settings, events)
    finally:
        assert stop_process(engine) == 0


SLOW_SEEK = ["engine-seek-delay=2"]


def test_an_engine_of_a_new_group_started_on_a_backlog_with_a_slow_seek_acts_on_every_event(
    rules_applied: Settings, tmp_path: Path
) -> None:
    events = send_backlog(rules_applied, BACKLOG)
    engine_acts_on_every_event(rules_applied, tmp_path, events, faults=SLOW_SEEK)


def test_an_engine_restarted_on_a_backlog_with_a_slow_seek_acts_on_every_event(
    rules_applied: Settings, tmp_path: Path
) -> None:
    first = send_backlog(rules_applied, 300)
    engine_acts_on_every_event(rules_applied, tmp_path, first)
    events = first + send_backlog(rules_applied, BACKLOG)
    engine_acts_on_every_event(rules_applied, tmp_path, events, faults=SLOW_SEEK)


def test_a_stalled_engine_reports_its_books_exits_for_a_restart_and_loses_nothing(
    rules_applied: Settings, tmp_path: Path
) -> None:
    # The broker refuses every action (over the topic's size limit): the engine waits for
    # their delivery for good, its lag stays, nothing is committed. The watchdog ends it.
    set_max_message_bytes(rules_applied, topics.ACTIONS, 64)
    events = send_backlog(rules_applied, 50)
    lag_interval = {"CRM_AUTOMATION_CONSUMER_LAG_INTERVAL_SECONDS": "1"}
    # The first engine joins a new group (~1 s); the restarted one may wait the 10 s
    # session timeout for the stalled engine's membership to expire, so it gets longer.
    engine = start_cli(
        rules_applied, tmp_path, "engine", CRM_AUTOMATION_ENGINE_STALL_SECONDS="8", **lag_interval
    )
    try:
        assert engine.wait(timeout=120) == EXIT_STALLED
    finally:
        stop_process(engine)
    [log] = tmp_path.glob("engine-*.log")
    report = [line for line in log.read_text().splitlines() if "engine stalled" in line]
    assert len(report) == 1, log.read_text()[-3000:]
    assert "engine stalled: lag 50 while nothing was processed" in report[0]
    assert all(f"partition={p} committed=None" in report[0] for p in range(3)), report[0]

    set_max_message_bytes(rules_applied, topics.ACTIONS, 1_048_588)  # Kafka's default
    engine_acts_on_every_event(
        rules_applied, tmp_path, events, CRM_AUTOMATION_ENGINE_STALL_SECONDS="15", **lag_interval
    )


NEW_RULE = """
  - id: lost-deal-review
    trigger: {entity_type: DEAL, pipeline: sales, stage: LOST}
    action: {type: plan_activity, subject: Review the lost deal, deadline: {delay: 1d}}
"""


def test_a_rule_published_while_the_engine_rebalances_is_applied(
    rules_applied: Settings, tmp_path: Path
) -> None:
    engine = start_cli(rules_applied, tmp_path, "engine", faults=["engine-seek-delay=6"])
    try:
        [log] = tmp_path.glob("engine-*.log")
        wait_for(
            lambda: "Seek stream partitions" in log.read_text(),
            timeout=60,
            what="the engine in its post-rebalance seek",
        )
        path = tmp_path / "rules.yaml"
        path.write_text(RULES + NEW_RULE)
        result = run_cli(rules_applied, tmp_path, "rules", "apply", str(path))
        assert result.returncode == 0, result.stderr
        load = Load(rules_applied, uuid.uuid4().hex[:6], seed=1)
        lost = load.new_event("LOST")
        load.send(lost)
        load.wait()
        reader = TopicReader(rules_applied, topics.ACTIONS)
        try:
            [(_, message)] = reader.until(1, timeout=90)
        finally:
            reader.close()
        action = codec.decode_as(message.value(), Action)
        assert (action.rule_id, action.item_key) == ("lost-deal-review", lost.key)
    finally:
        assert stop_process(engine) == 0
