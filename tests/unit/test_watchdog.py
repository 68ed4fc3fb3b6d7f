"""The liveness watchdog: a waiting input with nothing moving is a stall, anything else is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runtime.clock import FakeClock
from runtime.watchdog import StallWatchdog


class Engine:
    """What the watchdog watches: a progress count, and the stall reports it made."""

    def __init__(self) -> None:
        self.batches = 0
        self.stalls: list[str] = []


def watchdog(clock: FakeClock, engine: Engine) -> StallWatchdog:
    return StallWatchdog(60, lambda: engine.batches, engine.stalls.append, clock)


def test_lag_with_no_batch_and_no_commit_for_the_stall_time_is_reported_once() -> None:
    clock, engine = FakeClock(datetime(2026, 12, 1, tzinfo=UTC)), Engine()
    dog = watchdog(clock, engine)
    for _ in range(12):  # readings every 5 s, nothing moves
        dog.observe(lag=35, committed=1_000)
        clock.advance(timedelta(seconds=5))
    assert engine.stalls == []  # 55 s
    dog.observe(lag=35, committed=1_000)
    dog.observe(lag=35, committed=1_000)
    assert engine.stalls == [
        "lag 35 while nothing was processed and no offset was committed for 60 s"
    ]


def test_batches_or_commits_moving_or_no_lag_keep_the_engine_alive() -> None:
    clock, engine = FakeClock(datetime(2026, 12, 1, tzinfo=UTC)), Engine()
    dog = watchdog(clock, engine)
    committed = 0
    for reading in range(30):
        if reading % 3 == 0:
            engine.batches += 1  # one reading in three sees a batch done,
        elif reading % 3 == 1:
            committed += 10  # one a commit, one no lag at all
        dog.observe(lag=0 if reading % 3 == 2 else 500, committed=committed)
        clock.advance(timedelta(seconds=40))
    assert engine.stalls == []


def test_an_idle_engine_with_nothing_to_read_never_stalls() -> None:
    clock, engine = FakeClock(datetime(2026, 12, 1, tzinfo=UTC)), Engine()
    dog = watchdog(clock, engine)
    for _ in range(100):
        dog.observe(lag=0, committed=42)
        clock.advance(timedelta(minutes=5))
    assert engine.stalls == []
