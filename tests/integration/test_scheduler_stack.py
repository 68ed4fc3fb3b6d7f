"""`crm-automation scheduler` as a process on the real stack, with the real clock."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter as Tally
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from automation_core.model import Action
from runtime import codec, kafka_clients, topics
from runtime.settings import Settings
from sinks.metrics import SinkMetrics
from sinks.postgres import process as postgres_process
from tests.helpers import wait_for
from tests.integration.support import (
    TopicReader,
    metric_sum,
    set_max_message_bytes,
    start_cli,
    stop_process,
)
from tests.integration.test_scheduler_timers import schedule

pytestmark = pytest.mark.integration


def start_scheduler(
    s: Settings, tmp_path: Path, faults: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    return start_cli(s, tmp_path, "scheduler", faults=faults)


def now_ms() -> datetime:
    """Now, at the wire format's millisecond precision."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _timer_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM timers").fetchone()
    return int(row[0]) if row else 0


def send_timers(s: Settings, *commands: Any) -> None:
    producer = Producer(kafka_clients.producer_config(s))
    for command in commands:
        producer.produce(
            s.topic(topics.TIMERS), key=command.item_key.encode(), value=codec.encode(command)
        )
    kafka_clients.flush_or_raise(producer)


def scrape(s: Settings) -> str:
    url = f"http://127.0.0.1:{s.scheduler_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local http)
        return str(response.read().decode())


def test_a_five_second_delayed_action_is_produced_within_one_second_after_its_due_time(
    settings: Settings, tmp_path: Path
) -> None:
    reader = TopicReader(settings, topics.ACTIONS)
    scheduler = start_scheduler(settings, tmp_path)
    try:
        now = now_ms()
        due = now + timedelta(seconds=5)
        command = schedule("a-5s", issued_at=now, due_at=due)
        send_timers(settings, command)
        [(received_at, message)] = reader.until(1, timeout=30)
        assert codec.decode_as(message.value(), Action) == command.action
        assert message.key() == b"DEAL:1"
        _kind, produced_ms = message.timestamp()
        assert produced_ms >= int(due.timestamp() * 1000), "fired before its due time"
        assert received_at - due.timestamp() < 1.0
        # The metrics follow the commit, which follows the confirmed produce.
        deadline = time.monotonic() + 10
        while "crm_automation_timers_fired_total 1.0" not in (metrics := scrape(settings)):
            assert time.monotonic() < deadline, metrics
            time.sleep(0.05)
        assert "crm_automation_timers_scheduled_total 1.0" in metrics
    finally:
        reader.close()
        exit_code = stop_process(scheduler)
    assert exit_code == 0, "SIGTERM should finish the batch and exit cleanly"


def test_a_scheduler_killed_between_produce_and_commit_resends_on_restart_and_the_sink_writes_once(
    settings: Settings, tmp_path: Path
) -> None:
    n = 20
    reader = TopicReader(settings, topics.ACTIONS)
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    paused = start_scheduler(settings, tmp_path, faults=["scheduler-pause-before-commit=120"])
    try:
        # A far-future sentinel proves the scheduler consumes before the 20 are sent: all
        # 20 are then stored (in one or more ingest batches) before they fall due together,
        # so one claim fires them all and the pause holds that claim's commit.
        now = now_ms()
        send_timers(settings, schedule("a-sentinel", issued_at=now, due_at=now + timedelta(days=1)))
        wait_for(lambda: _timer_count(url) == 1, timeout=60, what="the scheduler consuming")
        now = now_ms()
        due = now + timedelta(seconds=2)
        commands = [
            schedule(f"a-kill-{i}", item=f"DEAL:{i}", issued_at=now, due_at=due) for i in range(n)
        ]
        send_timers(settings, *commands)
        reader.until(n, timeout=30)
        # The actions reach the topic before their confirmation reaches the scheduler: the
        # kill waits for the pause, so it comes after the confirmation, before the commit.
        [log] = tmp_path.glob("scheduler-*.log")
        wait_for(
            lambda: "fault: pausing" in log.read_text(),
            timeout=30,
            what="the fire loop paused before its commit",
        )
    finally:
        stop_process(paused, signal.SIGKILL)
    assert _statuses(url) == {"pending": n + 1}

    restarted = start_scheduler(settings, tmp_path)
    stop = threading.Event()
    sink = threading.Thread(
        target=postgres_process.run, args=(settings, SinkMetrics.create(CollectorRegistry()), stop)
    )
    sink.start()
    try:
        reader.until(2 * n, timeout=30)
        deadline = time.monotonic() + 30
        with psycopg.connect(url, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM leads").fetchone() != (n,):
                assert time.monotonic() < deadline, "sink did not write every lead"
                time.sleep(0.1)
            leads = Tally(r[0] for r in conn.execute("SELECT action_id FROM leads"))
        # The scheduler marks the timers fired after Kafka confirmed their actions, so the
        # sink may write the leads first.
        wait_for(
            lambda: _statuses(url) == {"fired": n, "pending": 1},
            timeout=30,
            what="the 20 timers marked fired, the sentinel still pending",
        )
    finally:
        stop.set()
        sink.join()
        reader.close()
        assert stop_process(restarted) == 0
    sent = Tally(codec.decode_as(m.value(), Action).action_id for _t, m in reader.messages)
    assert set(sent) == {c.action.action_id for c in commands if c.action}
    assert min(sent.values()) >= 1  # at least once on the topic (here: twice)
    assert leads == {a: 1 for a in sent}  # exactly once in Postgres


def test_a_timer_whose_action_the_broker_refuses_stays_pending_until_it_is_delivered(
    settings: Settings, tmp_path: Path
) -> None:
    # A timer is marked fired only in the transaction that commits after its action was
    # acknowledged: a refusal rolls the batch back, however often it is retried.
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    set_max_message_bytes(settings, topics.ACTIONS, 64)
    reader = TopicReader(settings, topics.ACTIONS)
    scheduler = start_scheduler(settings, tmp_path)
    try:
        now = now_ms()
        command = schedule("a-refused", issued_at=now, due_at=now + timedelta(seconds=1))
        send_timers(settings, command)
        retries = "crm_automation_scheduler_retries_total"
        wait_for(
            lambda: metric_sum(settings.scheduler_metrics_port, retries, loop="fire") >= 2,
            timeout=60,
            what="two refused fire batches",
        )
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT status, fired_at FROM timers").fetchall() == [
                ("pending", None)
            ]

        set_max_message_bytes(settings, topics.ACTIONS, 1_048_588)
        [(_, message)] = reader.until(1, timeout=60)
        assert codec.decode_as(message.value(), Action) == command.action
        wait_for(lambda: _statuses(url) == {"fired": 1}, timeout=30, what="the timer marked fired")
    finally:
        reader.close()
        assert stop_process(scheduler) == 0


def _statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM timers GROUP BY status").fetchall())
