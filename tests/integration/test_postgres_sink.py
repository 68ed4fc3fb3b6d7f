"""The Postgres sink's batch write on the real database: columns, replays, completions."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from automation_core.model import (
    Action,
    ActionMode,
    Client,
    Company,
    CompleteActivities,
    Contact,
    CopyDeal,
    CreateLead,
    Execution,
    ExecutionStatus,
    Item,
    PlanActivity,
)
from runtime import codec, kafka_clients, offsets, topics
from runtime.consume import Batch, ConsumeLoop, DeadLetters, PostgresOffsets
from runtime.dlq import HEADER_REASON
from runtime.settings import Settings
from sinks.metrics import SinkMetrics
from sinks.postgres import process as postgres_process
from sinks.postgres import store as postgres
from sinks.postgres.rows import Rows
from tests.helpers import wait_for
from tests.integration.support import TopicReader

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GROUP = "test-sink"
TOPIC = "automation.actions"


def action(payload: Any, item: str = "DEAL:4711", entry: str = "evt-1") -> Action:
    return Action(
        action_id=uuid.uuid4().hex,
        rule_id="rule-1",
        rule_version="v1",
        item_key=item,
        event_id=entry,
        stage_entry_id=entry,
        occurred_at=T0,
        mode=ActionMode.IMMEDIATE,
        payload=payload,
    )


def lead() -> Action:
    return action(
        CreateLead(
            lead_id="lead-1",
            title="Renewal",
            responsible_id="u-7",
            company=Company("c-1", "Müller GmbH"),
            contacts=(Contact("p-1", "Anna"), Contact("p-2", "Ben")),
            pipeline_id="leads",
            stage_id="NEW",
        )
    )


def deal() -> Action:
    item = Item(
        title="Maintenance",
        responsible_id="u-9",
        amount=Decimal("12000.50"),
        currency="EUR",
        company=Company("c-1", "Müller GmbH"),
        contacts=(Contact("p-1", "Anna", "Müller", "anna@example.com", "+49 30 1234"),),
        begin_date=date(2026, 11, 1),
        close_date=date(2026, 11, 30),
        fields={"UF_CONTRACT_NO": "MV-17", "UF_SEATS": ["3"]},
    )
    return action(
        CopyDeal(
            deal_id="deal-2",
            pipeline_id="installation",
            stage_id="NEW",
            item=item,
            source_item_key="DEAL:4711",
            copy_depth=1,
        )
    )


def activity(item: str = "DEAL:4711", entry: str = "evt-1") -> Action:
    return action(
        PlanActivity(
            activity_id="act-1",
            subject="Call",
            description='About the contract, "quoted"\ttab\\slash',
            deadline=T0 + timedelta(days=1),
            duration_minutes=30,
            responsible_id="u-7",
            stage_id="APPROVAL",
            color="yellow",
            add_to_calendar=True,
            clients=(Client("p-1", "contact", "Anna", "anna@example.com"),),
            invitee_ids=("u-12", "u-13"),
            address="Hauptstraße 1, Köln",
            location_id="room-1",
            link="https://meet.example.com/4711",
            files=("f-1",),
            complete_on_stage_exit=True,
        ),
        item,
        entry,
    )


def completion(item: str = "DEAL:4711", entry: str = "evt-1") -> Action:
    return action(
        CompleteActivities(stage_id="APPROVAL", completed_at=T0 + timedelta(hours=2)), item, entry
    )


def execution(status: ExecutionStatus = ExecutionStatus.FIRED) -> Execution:
    return Execution(
        rule_id="rule-1",
        item_key="DEAL:4711",
        event_id="evt-1",
        status=status,
        recorded_at=T0,
        action_id=uuid.uuid4().hex,
        rule_version="v1",
        reason="because",
    )


def rows_of(*records: Action | Execution, announce: str | None = None) -> Rows:
    rows = Rows(announce_topic=announce)
    for record in records:
        if isinstance(record, Action):
            rows.add_action(record)
        else:
            rows.add_execution(record)
    return rows


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as connection:
        yield connection


def fetch(conn: psycopg.Connection, query: str) -> list[tuple[Any, ...]]:
    with conn.transaction():
        return conn.execute(query).fetchall()


def counts(conn: psycopg.Connection) -> tuple[Any, ...]:
    (row,) = fetch(
        conn,
        "SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM deals),"
        " (SELECT count(*) FROM activities), (SELECT count(*) FROM activity_completions),"
        " (SELECT count(*) FROM executions), (SELECT count(*) FROM outbox)",
    )
    return row


def test_a_batch_of_every_kind_lands_with_every_column_right(conn: psycopg.Connection) -> None:
    the_lead, the_deal, the_activity, the_execution = lead(), deal(), activity(), execution()
    rows = rows_of(the_lead, the_deal, the_activity, the_execution, announce="crm.stage-changes")

    postgres.write_batch(conn, rows, GROUP, {(TOPIC, 0): 4})

    assert fetch(
        conn,
        "SELECT action_id, rule_id, lead_id, source_item_key, title, responsible_id, company_id,"
        " contact_ids, is_repeat, status, event_occurred_at FROM leads",
    ) == [
        (the_lead.action_id, "rule-1", "lead-1", "DEAL:4711", "Renewal", "u-7", "c-1",
         ["p-1", "p-2"], True, "new", T0)
    ]  # fmt: skip
    assert fetch(
        conn,
        "SELECT action_id, deal_id, source_item_key, title, pipeline_id, stage_id,"
        " responsible_id, amount, currency, company_id, contact_ids, fields, copy_depth,"
        " begin_date, close_date, company_title, contacts FROM deals",
    ) == [
        (the_deal.action_id, "deal-2", "DEAL:4711", "Maintenance", "installation", "NEW", "u-9",
         Decimal("12000.50"), "EUR", "c-1", ["p-1"], {"UF_CONTRACT_NO": "MV-17", "UF_SEATS": ["3"]},
         1, date(2026, 11, 1), date(2026, 11, 30), "Müller GmbH",
         [{"id": "p-1", "name": "Anna", "last_name": "Müller", "email": "anna@example.com",
           "phone": "+49 30 1234"}])
    ]  # fmt: skip
    assert fetch(
        conn,
        "SELECT action_id, activity_id, item_key, stage_id, stage_entry_id, subject,"
        " description, deadline, duration_minutes, responsible_id, color, add_to_calendar,"
        " client_ids, invitee_ids, address, location_id, link, files, complete_on_stage_exit,"
        " status, completed_at FROM activities",
    ) == [
        (the_activity.action_id, "act-1", "DEAL:4711", "APPROVAL", "evt-1", "Call",
         "About the contract, \"quoted\"\ttab\\slash", T0 + timedelta(days=1), 30, "u-7",
         "yellow", True, ["p-1"], ["u-12", "u-13"], "Hauptstraße 1, Köln", "room-1",
         "https://meet.example.com/4711", ["f-1"], True, "open", None)
    ]  # fmt: skip
    assert fetch(
        conn, "SELECT action_id, rule_id, item_key, event_id, status, reason FROM executions"
    ) == [(the_execution.action_id, "rule-1", "DEAL:4711", "evt-1", "fired", "because")]
    # Created items are announced: one outbox record each for the lead and the deal.
    outbox = fetch(conn, "SELECT action_id, topic, key, relayed_at FROM outbox ORDER BY id")
    assert [(a, t, bytes(k), r) for a, t, k, r in outbox] == [
        (the_lead.action_id, "crm.stage-changes", b"LEAD:lead-1", None),
        (the_deal.action_id, "crm.stage-changes", b"DEAL:deal-2", None),
    ]
    assert offsets.stored_offsets(conn, GROUP) == {(TOPIC, 0): 4}


def test_writing_a_batch_again_adds_no_row_and_never_moves_an_offset_back(
    conn: psycopg.Connection,
) -> None:
    rows = rows_of(lead(), deal(), activity(), completion(), execution(), announce="announce")
    postgres.write_batch(conn, rows, GROUP, {(TOPIC, 0): 10, (TOPIC, 1): 3})
    before = counts(conn)

    postgres.write_batch(conn, rows, GROUP, {(TOPIC, 0): 5})

    assert counts(conn) == before == (1, 1, 1, 1, 1, 2)
    assert offsets.stored_offsets(conn, GROUP) == {(TOPIC, 0): 10, (TOPIC, 1): 3}


def test_the_same_action_twice_in_one_batch_is_stored_once(conn: psycopg.Connection) -> None:
    the_deal = deal()
    postgres.write_batch(conn, rows_of(the_deal, the_deal, announce="announce"), GROUP, {})

    assert counts(conn) == (0, 1, 0, 0, 0, 1)


def test_a_batch_of_new_and_replayed_actions_stores_the_new_ones_in_topic_order(
    conn: psycopg.Connection,
) -> None:
    # The replayed action fails the direct COPY: its table's rows take the staging path.
    first, second, third = deal(), deal(), deal()
    postgres.write_batch(conn, rows_of(second), GROUP, {})

    postgres.write_batch(conn, rows_of(first, second, third, lead()), GROUP, {})

    stored = fetch(conn, "SELECT action_id FROM deals ORDER BY id")
    assert stored == [(second.action_id,), (first.action_id,), (third.action_id,)]
    assert counts(conn) == (1, 3, 0, 0, 0, 0)


@pytest.mark.parametrize("completion_first", [True, False], ids=["completion-first", "in-order"])
def test_an_activity_whose_stage_was_left_is_stored_completed_in_either_order(
    conn: psycopg.Connection, completion_first: bool
) -> None:
    the_activity, the_completion = activity(entry="evt-5"), completion(entry="evt-5")
    other_entry = activity(entry="evt-6")
    batches = [[the_completion], [the_activity, other_entry]]
    for batch in batches if completion_first else batches[::-1]:
        postgres.write_batch(conn, rows_of(*batch), GROUP, {})

    assert fetch(
        conn, "SELECT stage_entry_id, status, completed_at FROM activities ORDER BY 1"
    ) == [
        ("evt-5", "completed", T0 + timedelta(hours=2)),
        ("evt-6", "open", None),
    ]


def test_a_batch_that_fails_writes_nothing_and_the_next_one_on_the_connection_lands(
    conn: psycopg.Connection,
) -> None:
    bad = rows_of(lead(), execution())
    bad.executions[0] = (*bad.executions[0][:6], "bogus-status", *bad.executions[0][7:])

    with pytest.raises(psycopg.errors.CheckViolation):
        postgres.write_batch(conn, bad, GROUP, {(TOPIC, 0): 2})

    assert counts(conn) == (0, 0, 0, 0, 0, 0)
    assert offsets.stored_offsets(conn, GROUP) == {}
    postgres.write_batch(conn, rows_of(lead()), GROUP, {(TOPIC, 0): 2})
    assert counts(conn)[0] == 1


def _loop(
    settings: Settings, database_url: str, metrics: SinkMetrics, stop: threading.Event
) -> ConsumeLoop[postgres_process.Record]:
    """The sink's step on the consume loop, for calling its batch processing directly."""
    return ConsumeLoop(
        postgres_process.PostgresStep(database_url, metrics),
        consumer_config=kafka_clients.consumer_config(settings, f"unused-{uuid.uuid4().hex}"),
        topics=[TOPIC],
        offsets=PostgresOffsets(database_url, postgres_process.GROUP, stop),
        dead_letters=DeadLetters(
            Producer(kafka_clients.producer_config(settings)),
            "unused",
            lambda _reason: None,
            process="sink-postgres",
        ),
        stop=stop,
        batch_size=10,
        on_retry=metrics.retries.labels("postgres").inc,
        name="postgres",
    )


def test_a_connection_killed_mid_stream_is_replaced_and_the_batch_written_once(
    settings: Settings, conn: psycopg.Connection
) -> None:
    assert settings.database_url is not None
    metrics = SinkMetrics.create(CollectorRegistry())
    loop = _loop(settings, settings.database_url.get_secret_value(), metrics, threading.Event())
    try:
        assert loop.process(Batch([lead()], next_offsets={(TOPIC, 0): 1}))
        with conn.transaction():  # what an immediate-mode restart does to the writer's session
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

        written = loop.process(Batch([deal()], next_offsets={(TOPIC, 0): 2}))
    finally:
        loop.close()

    assert written
    assert metrics.retries.labels("postgres")._value.get() >= 1
    assert counts(conn)[:2] == (1, 1)
    assert offsets.stored_offsets(conn, postgres_process.GROUP) == {(TOPIC, 0): 2}


def test_a_stop_during_an_outage_leaves_the_batch_unwritten_and_returns(
    settings: Settings,
) -> None:
    stop = threading.Event()
    stop.set()
    metrics = SinkMetrics.create(CollectorRegistry())
    # Nothing listens on port 1: every attempt fails as during a Postgres outage.
    loop = _loop(settings, "postgresql://127.0.0.1:1/none", metrics, stop)
    try:
        assert loop.process(Batch([lead()], next_offsets={(TOPIC, 0): 1})) is False
    finally:
        loop.close()


def test_a_row_the_database_refuses_goes_to_the_dlq_and_the_rest_of_its_batch_lands(
    settings: Settings, conn: psycopg.Connection
) -> None:
    poisoned = lead()
    assert isinstance(poisoned.payload, CreateLead)
    poisoned = dataclasses.replace(
        poisoned, payload=dataclasses.replace(poisoned.payload, title="Renewal\x00")
    )
    good = [deal(), activity(), poisoned, completion()]
    producer = Producer(kafka_clients.producer_config(settings))
    for record in good:
        producer.produce(
            settings.topic(topics.ACTIONS), key=b"DEAL:4711", value=codec.encode(record)
        )
    kafka_clients.flush_or_raise(producer)
    dlq = TopicReader(settings, topics.DLQ)
    stop = threading.Event()
    sink = threading.Thread(
        target=postgres_process.run,
        args=(settings, SinkMetrics.create(CollectorRegistry()), stop),
    )
    sink.start()
    try:
        wait_for(
            lambda: (
                offsets.stored_offsets(conn, settings.group(postgres_process.GROUP)).get(
                    (settings.topic(topics.ACTIONS), partition_of(settings, conn))
                )
                == 4
            ),
            timeout=60,
            what="the offset past all four actions",
        )
        (_, letter), *_ = dlq.until(1, timeout=30)
    finally:
        stop.set()
        sink.join(30)
        dlq.close()

    assert counts(conn)[:4] == (0, 1, 1, 1)
    assert letter.value() == codec.encode(poisoned)
    assert dict(letter.headers())[HEADER_REASON] == b"rejected"


def partition_of(settings: Settings, conn: psycopg.Connection) -> int:
    """The actions' partition (all four share one key): the one with a stored offset."""
    stored = offsets.stored_offsets(conn, settings.group(postgres_process.GROUP))
    parts = [p for (t, p) in stored if t == settings.topic(topics.ACTIONS)]
    return parts[0] if parts else -1
