"""Scenario 2: the broker SIGKILLed and restarted, Postgres stopped (immediate), Radicale down."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
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


def assert_outage_loses_nothing(
    pipeline: Pipeline,
    run_id: str,
    *,
    after: float,
    stop: Callable[[], None],
    down: float,
    start: Callable[[], None],
    fault: str,
    scenario: str,
) -> None:
    """Under steady load: `stop` a service `after` seconds, restart it `down` seconds later;
    every expected action must land once, with nothing in the DLQ."""
    load = Load(pipeline.settings, run_id, random.randrange(1 << 30)).start(RATE, SECONDS)
    sleep_until(time.monotonic() + after)
    started = time.time()
    stop()
    sleep_until(time.monotonic() + down)
    start()
    pipeline.faults.append(Fault(fault, started, time.time()))
    load.wait()

    row = pipeline.finish(scenario, load)

    assert (row.lost, row.duplicates, row.dlq) == (0, 0, 0), row.notes


def test_kafka_sigkilled_and_restarted_on_its_data_loses_and_duplicates_no_action(
    stack: Any, pipeline: Pipeline, run_id: str
) -> None:
    kafka = own(stack, "kafka")

    def kill() -> None:
        os.kill(kafka.pid(), signal.SIGKILL)
        wait_for(lambda: kafka.pid() is None, timeout=30, what="the broker gone")
        kafka.stop()  # forget the dead process (pid file, reaped child)

    assert_outage_loses_nothing(
        pipeline,
        run_id,
        after=15,
        stop=kill,
        down=5,
        start=kafka.start,
        fault="SIGKILL kafka",
        scenario="Kafka broker SIGKILL + restart",
    )


def test_postgres_stopped_in_immediate_mode_and_restarted_loses_and_duplicates_no_action(
    stack: Any, pipeline: Pipeline, run_id: str
) -> None:
    postgres = own(stack, "postgres")
    assert_outage_loses_nothing(
        pipeline,
        run_id,
        after=15,
        stop=lambda: postgres.stop(mode="immediate"),
        down=10,
        start=postgres.start,
        fault="Postgres stop -m immediate",
        scenario="Postgres immediate stop 10 s + restart",
    )


def test_radicale_down_for_thirty_seconds_loses_and_duplicates_no_calendar_event(
    stack: Any, pipeline: Pipeline, run_id: str
) -> None:
    caldav = own(stack, "caldav")
    assert_outage_loses_nothing(
        pipeline,
        run_id,
        after=5,
        stop=caldav.stop,
        down=30,
        start=caldav.start,
        fault="Radicale down 30 s",
        scenario="Radicale down 30 s",
    )
