"""One retry helper for every loop: jittered, capped, doubling backoff that a stop cuts short."""

from __future__ import annotations

import threading

import pytest

from runtime.consume import PostgresOffsets
from runtime.retry import Backoff, retry


def test_each_wait_is_drawn_between_half_and_all_of_a_doubling_step_up_to_the_cap() -> None:
    stop = threading.Event()
    stop.set()  # waits return at once; the delays are still drawn as in an outage
    backoff = Backoff(stop, first=0.2, cap=1.0)
    steps = []
    for _ in range(6):
        steps.append(backoff.delay)
        backoff.wait()
    for delay, step in zip(steps, [0.2, 0.4, 0.8, 1.0, 1.0, 1.0], strict=True):
        assert step / 2 <= delay <= step
    backoff.reset()
    assert 0.1 <= backoff.delay <= 0.2


def test_the_delays_of_two_processes_in_one_outage_differ() -> None:
    stop = threading.Event()
    delays = {Backoff(stop, first=10.0).delay for _ in range(20)}
    assert len(delays) > 1


def test_retry_runs_until_the_attempt_succeeds_reporting_each_failure() -> None:
    stop = threading.Event()
    failures: list[str] = []
    attempts = iter([ConnectionError("down"), ConnectionError("still down"), None])

    def attempt() -> None:
        error = next(attempts)
        if error is not None:
            raise error

    done = retry(attempt, (ConnectionError,), stop, lambda e, _d: failures.append(str(e)))
    assert done is True
    assert failures == ["down", "still down"]


def test_a_stop_ends_the_retries_and_leaves_the_attempt_undone() -> None:
    stop = threading.Event()

    def attempt() -> None:
        stop.set()  # e.g. SIGTERM during an outage
        raise ConnectionError("down")

    assert retry(attempt, (ConnectionError,), stop, lambda _e, _d: None) is False


def test_an_error_that_is_not_retryable_propagates_at_once() -> None:
    with pytest.raises(ValueError, match="bad data"):
        retry(
            lambda: (_ for _ in ()).throw(ValueError("bad data")),
            (ConnectionError,),
            threading.Event(),
            lambda _e, _d: None,
        )


def test_reading_stored_offsets_waits_out_an_outage_until_stopped() -> None:
    # Nothing listens on port 1: each attempt fails as during a Postgres outage. The
    # second failure stops the process; the load says so instead of returning nothing
    # (no offsets would make the loop re-read every partition from the start).
    stop = threading.Event()
    failures: list[int] = []

    def on_retry() -> None:
        failures.append(1)
        if len(failures) == 2:
            stop.set()

    store = PostgresOffsets("postgresql://127.0.0.1:1/none", "g", stop, on_retry=on_retry)
    with pytest.raises(RuntimeError, match="stopped while waiting for Postgres"):
        store.load()
    assert len(failures) == 2
