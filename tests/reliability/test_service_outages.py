"""Scenario 2: the broker SIGKILLed and restarted, Postgres stopped (immediate), Radicale down."""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.reliability.harness import Fault, Load, Pipeline, sleep_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

RATE = 100
SECONDS = 40


def own(stack: Any, service: str) -> Any:
    """The stack's service, if this session started it (never fault the shared stack)."""
    server = getattr(stack.stack, service)
    assert server.pid() is not None, (
        f"{service} is not this session's own: unset the CRM_AUTOMATION_* service variables"
    )
    return server


def test_kafka_sigkilled_and_restarted_on_its_data_loses_and_duplicates_no_action(
    stack: Any, pipeline: Pipeline, run_id: str
) -> None:
    kafka = own(stack, "kafka")
    load = Load(pipeline.settings, run_id, random.randrange(1 << 30)).start(RATE, SECONDS)
    sleep_until(time.monotonic() + 15)
    started = time.time()
    os.kill(kafka.pid(), signal.SIGKILL)
    wait_for(lambda: kafka.pid() is None, timeout=30, what="the broker gone")
    kafka.stop()  # forget the dead process (pid file, reaped child)
    sleep_until(time.monotonic() + 5)
    kafka.start()
    pipeline.faults.append(Fault("SIGKILL kafka", started, time.time()))
    load.wait()

    row = pipeline.finish("Kafka broker SIGKILL + restart", load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes


def test_postgres_stopped_in_immediate_mode_and_restarted_loses_and_duplicates_no_action(
    stack: Any, pipeline: Pipeline, run_id: str
) -> None:
    postgres = own(stack, "postgres")
    load = Load(pipeline.settings, run_id, random.randrange(1 << 30)).start(RATE, SECONDS)
    sleep_until(time.monotonic() + 15)
    started = time.time()
    postgres.stop(mode="immediate")
    sleep_until(time.monotonic() + 10)
    postgres.start()
    pipeline.faults.append(Fault("Postgres stop -m immediate", started, time.time()))
    load.wait()

    row = pipeline.finish("Postgres immediate stop 10 s + restart", load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes


def test_radicale_down_for_thirty_seconds_loses_and_duplicates_no_calendar_event(
    stack: Any, pipeline: Pipeline, run_id: str
) -> None:
    caldav = own(stack, "caldav")
    load = Load(pipeline.settings, run_id, random.randrange(1 << 30)).start(RATE, SECONDS)
    sleep_until(time.monotonic() + 5)
    started = time.time()
    caldav.stop()
    sleep_until(time.monotonic() + 30)
    caldav.start()
    pipeline.faults.append(Fault("Radicale down 30 s", started, time.time()))
    load.wait()

    row = pipeline.finish("Radicale down 30 s", load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes
