"""One event end to end on the real stack: CLI → engine (Faust) → actions → Postgres sink."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from automation_core.model import Action
from runtime import codec, kafka_clients, topics
from runtime.dlq import HEADER_OFFSET, HEADER_REASON, HEADER_TOPIC
from runtime.settings import Settings
from streams.app import APP_ID
from tests.helpers import wait_for
from tests.integration.support import (
    TopicReader,
    metric_sum,
    read_topic,
    run_cli,
    set_max_message_bytes,
    start_cli,
    stop_process,
)

pytestmark = pytest.mark.integration

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, APPROVAL, WON, LOST]}
  - {id: installation, entity_type: DEAL, stages: [NEW, SCHEDULED, DONE]}
rules:
  - id: copy-to-installation
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: copy_deal, target_pipeline: installation, responsible: u-9, suffix: "SUFFIX"}
  - id: call-big-clients
    trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
    condition: {any: [{all: [{field: amount, op: gt, value: "50000"}]}]}
    action: {type: plan_activity, subject: Call, deadline: {delay: 1d}}
"""


def event(event_id: str, item_id: str, stage: str = "WON", at: str = "10:00") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": f"2026-11-26T{at}:00Z",
        "entity_type": "DEAL",
        "item_id": item_id,
        "pipeline_id": "sales",
        "stage_id": stage,
        "previous_stage_id": "APPROVAL",
        "item": {
            "title": "Maintenance Müller GmbH",
            "responsible_id": "u-7",
            "amount": "12000.00",
            "currency": "EUR",
            "company": {"id": "c-1", "title": "Müller GmbH"},
            "contacts": [{"id": "p-1", "name": "Anna", "email": "anna@example.com"}],
            "fields": {"UF_CONTRACT_NO": "MV-17"},
        },
    }


def produce(s: Settings, tmp_path: Path, *events: dict[str, Any]) -> None:
    text = "".join(json.dumps(e) + "\n" for e in events)
    result = run_cli(s, tmp_path, "events", "produce", "-", input_text=text)
    assert result.returncode == 0, result.stderr


def apply_rules(s: Settings, tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = run_cli(s, tmp_path, "rules", "apply", str(path))
    assert result.returncode == 0, result.stderr


def deals(s: Settings) -> list[tuple[Any, ...]]:
    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT source_item_key, title, pipeline_id, stage_id, responsible_id, amount,"
            " currency, company_id, contact_ids, fields, copy_depth, rule_id FROM deals"
            " ORDER BY source_item_key"
        ).fetchall()


@contextlib.contextmanager
def running(settings: Settings, tmp_path: Path, rules: str) -> Iterator[Settings]:
    """Rules applied, then the engine and the Postgres sink running as processes."""
    apply_rules(settings, tmp_path, rules)
    processes = [
        start_cli(settings, tmp_path, "engine"),
        start_cli(settings, tmp_path, "sink", "postgres"),
    ]
    try:
        yield settings
    finally:
        codes = [stop_process(process) for process in processes]
    assert codes == [0, 0], "a processor did not shut down cleanly on SIGTERM"


@pytest.fixture
def pipeline(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    with running(settings, tmp_path, RULES.replace("SUFFIX", " (installation)")) as s:
        yield s


CHAIN = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
  - {id: p1, entity_type: DEAL, stages: [NEW, DONE]}
  - {id: p2, entity_type: DEAL, stages: [NEW, DONE]}
  - {id: p3, entity_type: DEAL, stages: [NEW, DONE]}
  - {id: p4, entity_type: DEAL, stages: [NEW, DONE]}
rules:
  - {id: won-to-p1, trigger: {entity_type: DEAL, pipeline: sales, stage: WON},
     action: {type: copy_deal, target_pipeline: p1}}
  - {id: p1-to-p2, trigger: {entity_type: DEAL, pipeline: p1, stage: NEW},
     action: {type: copy_deal, target_pipeline: p2}}
  - {id: p2-to-p3, trigger: {entity_type: DEAL, pipeline: p2, stage: NEW},
     action: {type: copy_deal, target_pipeline: p3}}
  - {id: p3-to-p4, trigger: {entity_type: DEAL, pipeline: p3, stage: NEW},
     action: {type: copy_deal, target_pipeline: p4}}
"""


def test_a_copied_deal_triggers_its_own_rules_and_the_fourth_copy_in_a_chain_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    with running(settings, tmp_path, CHAIN) as s:
        produce(s, tmp_path, event("evt-1", "4711"))

        refused = wait_for(
            lambda: [row for row in executions(s) if row[2] == "failed"],
            timeout=120,
            what="the refused fourth copy",
        )
        rows = deals(s)

    assert sorted((row[2], row[10]) for row in rows) == [("p1", 1), ("p2", 2), ("p3", 3)]
    assert [row[1:] for row in refused] == [("p3-to-p4", "failed", "copy_chain_limit")]


LEAD_LOOP = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
  - {id: leads, entity_type: LEAD, stages: [NEW, DONE]}
rules:
  - {id: won-to-lead, trigger: {entity_type: DEAL, pipeline: sales, stage: WON},
     action: {type: create_lead, title: "Repeat: {{ title }}"}}
  - {id: lead-to-lead, trigger: {entity_type: LEAD, pipeline: leads, stage: NEW},
     action: {type: create_lead, title: "Again: {{ title }}"}}
"""


def test_a_rule_that_creates_a_lead_for_every_new_lead_stops_at_the_third_generation(
    settings: Settings, tmp_path: Path
) -> None:
    loop = tmp_path / "loop.yaml"
    loop.write_text(LEAD_LOOP)
    dry_run = run_cli(settings, tmp_path, "rules", "apply", "--dry-run", str(loop))
    assert dry_run.returncode == 0, dry_run.stderr
    assert "warning: rule lead-to-lead can trigger itself" in dry_run.stderr
    with running(settings, tmp_path, LEAD_LOOP) as s:
        produce(s, tmp_path, event("evt-1", "4711"))

        refused = wait_for(
            lambda: [row for row in executions(s) if row[2] == "failed"],
            timeout=120,
            what="the refused fourth generation",
        )
        assert s.database_url is not None
        with psycopg.connect(s.database_url.get_secret_value()) as conn:
            titles = [r[0] for r in conn.execute("SELECT title FROM leads ORDER BY title")]

    assert titles == [
        "Again: Again: Repeat: Maintenance Müller GmbH",
        "Again: Repeat: Maintenance Müller GmbH",
        "Repeat: Maintenance Müller GmbH",
    ]
    assert [row[1:] for row in refused] == [("lead-to-lead", "failed", "creation_chain_limit")]


def test_a_won_deal_is_copied_into_installation_and_lands_in_postgres(
    pipeline: Settings, tmp_path: Path
) -> None:
    produce(pipeline, tmp_path, event("evt-1", "4711"))

    rows = wait_for(lambda: deals(pipeline), timeout=90, what="the copied deal in Postgres")

    assert rows == [
        (
            "DEAL:4711", "Maintenance Müller GmbH (installation)", "installation", "NEW", "u-9",
            pytest.approx(12000), "EUR", "c-1", ["p-1"], {"UF_CONTRACT_NO": "MV-17"}, 1,
            "copy-to-installation",
        )
    ]  # fmt: skip


def test_a_redelivered_event_creates_nothing_twice(pipeline: Settings, tmp_path: Path) -> None:
    produce(pipeline, tmp_path, event("evt-1", "4711"), event("evt-2", "4712"))
    wait_for(lambda: len(deals(pipeline)) == 2, timeout=90, what="two copied deals")

    produce(pipeline, tmp_path, event("evt-1", "4711"), event("evt-3", "4713"))

    wait_for(lambda: len(deals(pipeline)) == 3, timeout=60, what="the third deal")
    assert [row[0] for row in deals(pipeline)] == ["DEAL:4711", "DEAL:4712", "DEAL:4713"]


def test_two_items_whose_producer_reused_an_event_id_each_get_their_own_copy(
    pipeline: Settings, tmp_path: Path
) -> None:
    produce(pipeline, tmp_path, event("evt-1", "4711"), event("evt-1", "4712"))

    wait_for(lambda: len(deals(pipeline)) == 2, timeout=90, what="a copied deal for each item")
    assert [row[0] for row in deals(pipeline)] == ["DEAL:4711", "DEAL:4712"]


def test_a_rule_edit_changes_behaviour_for_new_events_without_a_restart(
    pipeline: Settings, tmp_path: Path
) -> None:
    produce(pipeline, tmp_path, event("evt-1", "4711"))
    wait_for(lambda: len(deals(pipeline)) == 1, timeout=90, what="the first copy")

    apply_rules(pipeline, tmp_path, RULES.replace("SUFFIX", " Kopie"))
    produce(pipeline, tmp_path, event("evt-2", "4712"))

    rows = wait_for(lambda: deals(pipeline)[1:], timeout=60, what="the second copy")
    assert rows[0][1] == "Maintenance Müller GmbH Kopie"


def test_a_poison_message_goes_to_the_dlq_with_its_reason_and_the_next_event_is_processed(
    pipeline: Settings, tmp_path: Path
) -> None:
    dlq = TopicReader(pipeline, topics.DLQ)
    producer = Producer(kafka_clients.producer_config(pipeline))
    producer.produce(
        pipeline.topic(topics.STAGE_CHANGES), key=b"DEAL:666", value=b"\xc3\x01garbage"
    )
    kafka_clients.flush_or_raise(producer)

    produce(pipeline, tmp_path, event("evt-1", "4711"))

    wait_for(lambda: len(deals(pipeline)) == 1, timeout=90, what="the valid event's copy")
    (_, letter), *_ = dlq.until(1, timeout=30)
    dlq.close()
    headers = dict(letter.headers())
    assert letter.value() == b"\xc3\x01garbage"
    assert headers[HEADER_REASON] == b"truncated"
    assert headers[HEADER_TOPIC] == pipeline.topic(topics.STAGE_CHANGES).encode()
    assert headers[HEADER_OFFSET] == b"0"


def test_an_engine_killed_before_its_actions_are_delivered_emits_them_after_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    # The broker refuses the actions (over the topic's size limit) once the engine has
    # evaluated the event: the item's new state must not reach the changelog before them,
    # or the restarted engine drops the event as seen and emits nothing. Found by the
    # quick engine-kill scenario: ~50 events' actions never emitted after a SIGKILL.
    rules = RULES.replace("SUFFIX", " (installation)")
    apply_rules(settings, tmp_path, rules)
    set_max_message_bytes(settings, topics.ACTIONS, 64)
    changelog = TopicReader(settings, f"{APP_ID}-item-state-changelog")
    engine = start_cli(settings, tmp_path, "engine")
    try:
        produce(settings, tmp_path, event("evt-1", "4711"))
        wait_for(
            lambda: metric_sum(settings.engine_metrics_port, "crm_automation_events_total") >= 1,
            timeout=90,
            what="the event evaluated",
        )
        with pytest.raises(AssertionError, match="0 of 1 messages"):
            changelog.until(1, timeout=3)  # Faust's producer flushes within milliseconds
    finally:
        changelog.close()
        stop_process(engine, signal.SIGKILL)

    set_max_message_bytes(settings, topics.ACTIONS, 1_048_588)  # Kafka's default
    with running(settings, tmp_path, rules) as s:
        rows = wait_for(lambda: deals(s), timeout=90, what="the copied deal in Postgres")
    assert [row[:3] for row in rows] == [
        ("DEAL:4711", "Maintenance Müller GmbH (installation)", "installation")
    ]


def executions(s: Settings) -> list[tuple[Any, ...]]:
    assert s.database_url is not None
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT item_key, rule_id, status, reason FROM executions ORDER BY item_key, rule_id"
        ).fetchall()


def test_a_rule_whose_condition_is_false_only_logs_a_skipped_execution(
    pipeline: Settings, tmp_path: Path
) -> None:
    produce(pipeline, tmp_path, event("evt-1", "4711", stage="APPROVAL"), event("evt-2", "4712"))

    wait_for(lambda: len(deals(pipeline)) == 1, timeout=90, what="the copy of the won deal")
    logged = wait_for(
        lambda: [row for row in executions(pipeline) if row[0] == "DEAL:4711"],
        timeout=30,
        what="the execution record of the skipped rule",
    )
    assert [row[:3] for row in logged] == [("DEAL:4711", "call-big-clients", "skipped")]
    assert logged[0][3]  # the reason is recorded
    assert pipeline.database_url is not None
    with psycopg.connect(pipeline.database_url.get_secret_value()) as conn:
        assert conn.execute("SELECT count(*) FROM activities").fetchone() == (0,)


def test_an_invalid_line_is_reported_with_its_number_and_the_cli_exits_non_zero(
    settings: Settings, tmp_path: Path
) -> None:
    text = json.dumps(event("evt-1", "1")) + "\n" + '{"event_id": "x"}\n'
    result = run_cli(settings, tmp_path, "events", "produce", "--strict", "-", input_text=text)
    assert result.returncode == 1
    assert "line 2" in result.stderr


def test_db_migrate_is_idempotent(settings: Settings, tmp_path: Path) -> None:
    result = run_cli(settings, tmp_path, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def action_ids_in_topic(s: Settings) -> list[str]:
    """The action id of every record in automation.actions, read up to its end."""
    return [
        codec.decode_as(message.value() or b"", Action).action_id
        for message in read_topic(s, topics.ACTIONS)
    ]


def deal_action_ids(s: Settings) -> list[str] | None:
    """None while Postgres is still starting."""
    assert s.database_url is not None
    try:
        with psycopg.connect(s.database_url.get_secret_value()) as conn:
            return [row[0] for row in conn.execute("SELECT action_id FROM deals")]
    except psycopg.OperationalError:
        return None


# Reliability tier (make test-reliability). Failures seen so far (2026-11-26: 1 of 5 runs,
# then 2 of 2) were all in the engine: events produced before the restart that never
# became actions (e.g. offsets 5-24 of every partition skipped at start-up), while the
# sink wrote every action of the topic exactly once. The two assertions tell them apart.
@pytest.mark.reliability
def test_restarting_postgres_in_immediate_mode_mid_stream_loses_and_duplicates_nothing(
    stack: Any, pipeline: Settings, tmp_path: Path
) -> None:
    postgres = stack.stack.postgres
    total = 120
    produce(pipeline, tmp_path, *(event(f"evt-{n}", f"9{n:03d}") for n in range(total // 2)))
    wait_for(lambda: len(deals(pipeline)) >= 10, timeout=90, what="the first copies")

    postgres.stop(mode="immediate")
    produce(pipeline, tmp_path, *(event(f"evt-{n}", f"9{n:03d}") for n in range(total // 2, total)))
    postgres.start()

    # All copies, or a timeout: either way the assertions below say which stage lost what.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: len(deal_action_ids(pipeline) or ()) >= total, timeout=120)
    emitted = action_ids_in_topic(pipeline)
    stored = wait_for(lambda: deal_action_ids(pipeline), timeout=30, what="Postgres answering")
    assert stored is not None

    assert len(stored) == len(set(stored)), "the sink stored an action twice"
    assert sorted(stored) == sorted(set(emitted)), "the sink lost actions of the topic"
    assert len(set(emitted)) == total, f"the engine emitted {len(set(emitted))} of {total} copies"


CALENDAR_TIME = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, APPROVAL, WON, LOST]}
working_time:
  company:
    timezone: Europe/Berlin
    days: [mon, tue, wed, thu, fri]
    hours: "09:00-18:00"
    holidays: DE
    days_off: ["2027-03-26"]
    extra_working_days: ["2027-03-28"]
rules:
  - id: review-in-office-hours
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 1m, working_time: company}
    action: {type: plan_activity, subject: Review}
  - id: call-tomorrow-at-two
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 1d, at: "14:00", timezone: Europe/Berlin}
    action: {type: plan_activity, subject: Call}
  - id: renewal-in-six-months
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 6mo, timezone: Europe/Berlin}
    action: {type: create_lead, title: "Renew {{ item.title }}"}
"""


def test_calendar_days_months_and_company_days_are_stored_as_the_timers_due_times(
    settings: Settings, tmp_path: Path
) -> None:
    # 23:30 in Berlin on 27 March 2027, the night the clocks go forward: "tomorrow at
    # 14:00" is the 28th (24 hours later it is already the 29th there), and six months
    # later is 27 September at 23:30 summer time.
    apply_rules(settings, tmp_path, CALENDAR_TIME)
    won = event("evt-dst", "4711") | {"occurred_at": "2027-03-27T22:30:00Z"}
    processes = [
        start_cli(settings, tmp_path, "engine"),
        start_cli(settings, tmp_path, "scheduler"),
    ]
    try:
        produce(settings, tmp_path, won)
        assert settings.database_url is not None
        url = settings.database_url.get_secret_value()

        def due_times() -> dict[str, datetime]:
            with psycopg.connect(url) as conn:
                rows = conn.execute("SELECT rule_id, due_at FROM timers").fetchall()
            return dict(rows) if len(rows) == 3 else {}

        stored = wait_for(due_times, timeout=90, what="the three timers stored by the scheduler")
    finally:
        codes = [stop_process(process) for process in processes]
    assert stored == {
        # Sunday 28 March is the company's extra working day: 09:00 summer time.
        "review-in-office-hours": datetime(2027, 3, 28, 7, 0, tzinfo=UTC),
        "call-tomorrow-at-two": datetime(2027, 3, 28, 12, 0, tzinfo=UTC),
        "renewal-in-six-months": datetime(2027, 9, 27, 21, 30, tzinfo=UTC),
    }
    assert codes == [0, 0]
