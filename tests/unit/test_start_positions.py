"""The engine re-reads never-committed partitions from 0 after each of Faust's seeks."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import pytest

from crm_automation.process import Readiness
from streams import start_positions
from streams.start_positions import read_never_committed_from_start


class TP(NamedTuple):
    topic: str
    partition: int


class RecordingConsumer:
    """Faust's consumer surface the wrapper uses: assignment, seeks, committed offsets."""

    def __init__(self, committed: dict[TP, int | None], failures: int = 0) -> None:
        self.committed = committed
        self.failures = failures
        self.faust_seeks = 0
        self.positions: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return set(self.committed)

    async def perform_seek(self) -> None:
        self.faust_seeks += 1

    async def seek_to_committed(self) -> dict[TP, int | None]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("coordinator not available")
        self.positions.update({tp: o for tp, o in self.committed.items() if o is not None})
        return dict(self.committed)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.positions.update(partitions)


def _seek(consumer: Any) -> None:
    asyncio.run(consumer.perform_seek())


def test_never_committed_event_partitions_go_back_to_offset_zero_after_fausts_seek() -> None:
    fresh, committed, other = TP("crm.stage-changes", 0), TP("crm.stage-changes", 1), TP("x", 0)
    consumer = RecordingConsumer({fresh: None, committed: 42, other: None})
    consumer.positions = {fresh: 17, committed: 50, other: 9}  # where the fetcher had got to
    read_never_committed_from_start(consumer, "crm.stage-changes")
    _seek(consumer)
    _seek(consumer)  # e.g. the fetcher's "flow not active" seek
    assert consumer.faust_seeks == 2
    assert consumer.positions == {fresh: 0, committed: 42, other: 9}


def test_installing_twice_wraps_once() -> None:
    consumer = RecordingConsumer({TP("t", 0): None})
    read_never_committed_from_start(consumer, "t")
    read_never_committed_from_start(consumer, "t")
    _seek(consumer)
    assert consumer.faust_seeks == 1


def test_a_coordinator_error_is_retried_and_readiness_follows_the_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(start_positions, "BACKOFF_SECONDS", 0.001)
    tp = TP("t", 0)
    readiness = Readiness().require("consuming", "starting")
    consumer = RecordingConsumer({tp: None}, failures=2)
    consumer.positions = {tp: 5}
    read_never_committed_from_start(consumer, "t", readiness)
    _seek(consumer)
    assert consumer.positions == {tp: 0}
    assert readiness.status() == (True, "ready")

    failing = RecordingConsumer({tp: None}, failures=99)
    readiness = Readiness().require("consuming", "starting")
    read_never_committed_from_start(failing, "t", readiness)
    _seek(failing)
    assert readiness.status() == (False, "consuming: committed offsets unknown")
