"""streams/faust_compat.py: one test per patch of Faust internals, failing when upstream changes.

Each patch relies on upstream code read for the pinned versions. The fingerprints below
are of that code's source: a new faust-streaming or aiokafka that changes it fails here
first, with the name of the function to re-read before the pin moves.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
from collections import defaultdict
from typing import Any, NamedTuple

import faust
import pytest
from aiokafka.consumer.consumer import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from faust.assignor import partition_assignor
from faust.stores import memory as faust_memory_store
from faust.tables import base as faust_tables_base
from faust.tables import recovery
from faust.tables import table as faust_table
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from runtime.health import Readiness
from runtime.kafka_clients import Outgoing
from streams import faust_compat
from streams.faust_compat import (
    IncompatibleFaust,
    ProducedChangelogTable,
    RulesTable,
    check_versions,
    confirm_before_commit,
    deliver,
    guard_head_gaps,
    install_recovery_seek,
    race_only_a_waiting_delivery,
    shorten_fetch_wait,
)


def _faust_create_worker_consumer() -> Any:
    """Faust's own method, also after `shorten_fetch_wait` wrapped it in this process."""
    thread_class = faust_aiokafka.AIOKafkaConsumerThread
    return getattr(thread_class, "_crm_faust_create", thread_class._create_worker_consumer)


def _fausts_drain_messages() -> Any:
    """Faust's own fetch loop, also after `race_only_a_waiting_delivery` replaced it."""
    consumer_class = faust_consumer.Consumer
    return getattr(consumer_class, "_crm_faust_drain_messages", consumer_class._drain_messages)


def fingerprint(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


UPSTREAM = {
    # RulesTable: the assignor asks the table for its changelog name.
    "PartitionAssignor._global_table_standby_assignments": (
        partition_assignor.PartitionAssignor._global_table_standby_assignments
    ),
    # ProducedChangelogTable.get_bytes / put: the table's store, and the memory store's
    # dict (the engine's store is memory://).
    "Collection.data": faust_tables_base.Collection.data.fget,
    "Collection._new_store": faust_tables_base.Collection._new_store,
    "memory.Store.__post_init__": faust_memory_store.Store.__post_init__,
    # install_recovery_seek: who calls perform_seek, in which order with the queue clear
    # and the flow resume, and what Faust's own perform_seek keeps up to date.
    "Recovery.on_recovery_completed": recovery.Recovery.on_recovery_completed,
    "Recovery._resume_streams": recovery.Recovery._resume_streams,
    "Consumer.perform_seek": faust_consumer.Consumer.perform_seek,
    "Consumer.getmany": faust_consumer.Consumer.getmany,
    # race_only_a_waiting_delivery: the fetch loop it copies, and the race it keeps.
    "Consumer._drain_messages": _fausts_drain_messages(),
    "Service.wait_first": Service.wait_first,
    "AIOKafkaConsumerThread._seek_wait": faust_aiokafka.AIOKafkaConsumerThread._seek_wait,
    "FlowControlEvent.resume": FlowControlEvent.resume,
    # guard_head_gaps: the commit rule it wraps.
    "Consumer._new_offset": faust_consumer.Consumer._new_offset,
    # shorten_fetch_wait: Faust's fixed 1,500 ms, the attribute aiokafka's start() hands
    # to its fetcher, and the fetcher's rule that keeps partitions out of a request.
    "AIOKafkaConsumerThread._create_worker_consumer": _faust_create_worker_consumer(),
    "AIOKafkaConsumer.start": AIOKafkaConsumer.start,
    "Fetcher._get_actions_per_node": Fetcher._get_actions_per_node,
    # ProducedChangelogTable: what calls send_changelog and reads its result.
    "Table.on_key_set": faust_table.Table.on_key_set,
    "Table.on_key_del": faust_table.Table.on_key_del,
    # confirm_before_commit: the producer flush Faust awaits before committing offsets.
    "Consumer._commit_offsets": faust_consumer.Consumer._commit_offsets,
}


def test_the_pinned_versions_are_installed_and_pass_the_start_up_check() -> None:
    check_versions()


def test_another_faust_version_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    versions = {"faust-streaming": "0.16.0", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}
    monkeypatch.setattr(faust_compat.importlib.metadata, "version", versions.__getitem__)
    with pytest.raises(IncompatibleFaust, match=r"faust-streaming 0\.16\.0 \(needs 0\.15\.3\)"):
        check_versions()


def test_the_upstream_code_the_patches_rely_on_is_the_code_they_were_written_for() -> None:
    assert {name: fingerprint(f) for name, f in UPSTREAM.items()} == {
        name: EXPECTED[name] for name in UPSTREAM
    }, "upstream changed: re-read these functions before moving the pins in pyproject"


EXPECTED = {
    "PartitionAssignor._global_table_standby_assignments": "b956f05703d92ce5",
    "Collection.data": "ade4a02ddd5582cb",
    "Collection._new_store": "914a2bda605d38f5",
    "memory.Store.__post_init__": "e59c82f3785458b2",
    "Recovery.on_recovery_completed": "6ef567acf072e46d",
    "Recovery._resume_streams": "d986a6710c1aca98",
    "Consumer.perform_seek": "0e8c130ff4b0afd8",
    "Consumer.getmany": "4b168d84882a70d6",
    "Consumer._drain_messages": "44a2500309e83c63",
    "Service.wait_first": "feade6a31f8a6789",
    "AIOKafkaConsumerThread._seek_wait": "9d221e816d940467",
    "FlowControlEvent.resume": "4dcdc1253fd0dcb4",
    "Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "AIOKafkaConsumerThread._create_worker_consumer": "c2701bfc3e6f6cad",
    "AIOKafkaConsumer.start": "2f1ba70443327538",
    "Fetcher._get_actions_per_node": "1dab2cf937d165d0",
    "Table.on_key_set": "a370e35ca55c2c7e",
    "Table.on_key_del": "4f2900b2f9d24a08",
    "Consumer._commit_offsets": "1a69799041188441",
}


def test_the_rules_table_names_its_own_topic_as_its_changelog() -> None:
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1")
    topic = app.topic("prefix.automation.rules", key_type=bytes, value_type=bytes)
    table = RulesTable(app, name="rules", changelog_topic=topic, partitions=1)
    assert table._changelog_topic_name() == "prefix.automation.rules"
    assert faust.GlobalTable(app, name="other")._changelog_topic_name() == (
        "compat-test-other-changelog"
    )


class TP(NamedTuple):
    topic: str
    partition: int


class FlowConsumer:
    """The Faust consumer surface the seek uses, recording flow and positions."""

    def __init__(self, committed: dict[TP, int | None], earliest: int = 0) -> None:
        self.committed = committed
        self.earliest = earliest
        self.flow_active = True
        self.positions: dict[TP, int] = {}
        self._read_offset: dict[TP, int | None] = {}
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._gap: defaultdict[TP, Any] = defaultdict(lambda: None)
        self._new_offset = functools.partial(faust_consumer.Consumer._new_offset, self)
        self.failures = 0

    def assignment(self) -> set[TP]:
        return set(self.committed)

    def stop_flow(self) -> None:
        self.flow_active = False

    async def seek_to_committed(self) -> dict[TP, int | None]:
        assert not self.flow_active, "seeking while the fetcher may deliver"
        if self.failures:
            self.failures -= 1
            raise RuntimeError("coordinator not available")
        self.positions.update({tp: o for tp, o in self.committed.items() if o is not None})
        return dict(self.committed)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.earliest)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.positions.update(partitions)


EVENTS = "crm.stage-changes"


def test_the_seek_stops_the_flow_first_and_positions_every_partition_in_fausts_books() -> None:
    fresh, committed, other = TP(EVENTS, 0), TP(EVENTS, 1), TP("x", 0)
    consumer = FlowConsumer({fresh: None, committed: 42, other: None}, earliest=7)
    consumer.positions = {fresh: 170, committed: 50, other: 9}  # where the fetcher had got to
    consumer._read_offset = {fresh: 169, committed: 49}  # records Faust's clear will drop
    readiness = Readiness().require("consuming", "starting")
    install_recovery_seek(consumer, EVENTS, readiness)
    install_recovery_seek(consumer, EVENTS, readiness)  # once only

    asyncio.run(consumer.perform_seek())

    assert not consumer.flow_active  # Faust resumes it after its queue clear
    assert consumer.positions == {fresh: 7, committed: 42, other: 9}
    assert consumer._read_offset == {fresh: 7, committed: 42, other: None}
    assert consumer._committed_offset == {committed: 42}
    assert readiness.status() == (True, "ready")


def test_the_rules_partition_goes_back_to_after_the_last_rule_applied() -> None:
    # Records the fetcher had delivered (up to 30) but Faust's clear will drop are read
    # again; a partition with no rule applied yet is read from its start.
    rules, other_rules, events = TP("automation.rules", 0), TP("automation.rules", 1), TP(EVENTS, 0)
    consumer = FlowConsumer({rules: None, other_rules: None, events: 5})
    consumer.positions = {rules: 31, other_rules: 4, events: 9}
    consumer._read_offset = {rules: 30, other_rules: 3}
    install_recovery_seek(consumer, EVENTS, applied=("automation.rules", {rules: 12}))

    asyncio.run(consumer.perform_seek())

    assert consumer.positions == {rules: 12, other_rules: 0, events: 5}
    assert consumer._read_offset == {rules: 12, other_rules: None, events: 5}


def test_the_seek_ends_in_after_recovery_seek_with_every_partition_positioned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The point tests/faults.py holds to widen the window Faust's queue clear acts in.
    fresh, rules = TP(EVENTS, 0), TP("automation.rules", 0)
    consumer = FlowConsumer({fresh: None, rules: None}, earliest=7)
    readiness = Readiness().require("consuming", "starting")
    seen: list[tuple[bool, dict[TP, int], bool]] = []

    async def record() -> None:
        seen.append((consumer.flow_active, dict(consumer.positions), readiness.status()[0]))

    monkeypatch.setattr(faust_compat, "after_recovery_seek", record)
    install_recovery_seek(consumer, EVENTS, readiness, applied=("automation.rules", {rules: 3}))
    asyncio.run(consumer.perform_seek())

    assert seen == [(False, {fresh: 7, rules: 3}, False)]
    assert readiness.status() == (True, "ready")


def test_a_coordinator_error_is_retried_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_compat, "BACKOFF_SECONDS", 0.001)
    consumer = FlowConsumer({TP(EVENTS, 0): None})
    consumer.failures = 2
    install_recovery_seek(consumer, EVENTS)
    asyncio.run(consumer.perform_seek())
    assert consumer.positions == {TP(EVENTS, 0): 0}

    consumer.failures = faust_compat.ATTEMPTS
    with pytest.raises(RuntimeError, match="coordinator"):
        asyncio.run(consumer.perform_seek())


def test_fausts_own_rule_commits_past_a_hole_at_the_head_of_a_never_committed_partition() -> None:
    # The upstream behaviour the guard exists for; when upstream fixes it this fails.
    tp = TP(EVENTS, 0)
    consumer = FlowConsumer({tp: None})
    consumer._acked[tp] = [5, 6, 7]
    assert consumer._new_offset(tp) == 8


def test_the_guard_holds_a_never_committed_partitions_commit_until_its_head_is_acked() -> None:
    tp, committed_tp = TP(EVENTS, 0), TP(EVENTS, 1)
    consumer = FlowConsumer({tp: None, committed_tp: 3})
    guard_head_gaps(consumer, {tp: 0})
    consumer._acked[tp] = [5, 6, 7]
    assert consumer._new_offset(tp) is None  # 0-4 were never acknowledged

    consumer._acked[tp] = [0, 1, 2, 3, 4, 5, 6, 7]
    assert consumer._new_offset(tp) == 8

    consumer._committed_offset[committed_tp] = 3
    consumer._acked[committed_tp] = [9, 10]
    assert consumer._new_offset(committed_tp) is None  # Faust's own rule, unchanged


def test_fausts_queue_clear_on_resume_drops_what_was_put_while_suspended() -> None:
    # Why the seek stops the flow first: Faust's conductor puts records without waiting
    # for flow control, and resuming the flow clears the queue.
    async def scenario() -> int:
        flow = FlowControlEvent()
        queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        queue.put_nowait_enhanced(1, on_pressure_high=lambda: None, on_pressure_drop=lambda: None)
        flow.resume()
        return queue.qsize()

    assert asyncio.run(scenario()) == 0


def test_the_engines_consumer_fetches_with_a_short_wait_where_faust_sets_one_and_a_half_s() -> None:
    async def created_waits() -> tuple[int, int]:
        app = faust.App("compat-test", broker="kafka://127.0.0.1:1")
        thread = app.consumer._thread
        fausts = _faust_create_worker_consumer()(thread, app.transport)
        shorten_fetch_wait()
        shorten_fetch_wait()  # once per process: a second app does not wrap it again
        ours = thread._create_worker_consumer(app.transport)
        for consumer in (fausts, ours):
            await consumer.stop()
        thread.thread_loop.close()  # never started: its loop is closed by hand
        return fausts._fetch_max_wait_ms, ours._fetch_max_wait_ms

    assert asyncio.run(created_waits()) == (1500, faust_compat.FETCH_MAX_WAIT_MS)
    assert faust_compat.FETCH_MAX_WAIT_MS <= 100


def test_a_table_write_goes_to_the_engines_producer_on_its_events_partition() -> None:
    sent: list[Outgoing] = []
    app = faust.App("compat-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = ProducedChangelogTable.of_bytes(app, "item-state", send=sent.append, partitions=6)
    assert table.get_bytes(b"DEAL:1") is None
    table.put(b"DEAL:1", b"state-1", 4)
    table.put(b"DEAL:2", b"state-2", 2)
    table.put(b"DEAL:1", b"state-1b", 4)

    topic = "compat-test-item-state-changelog"
    assert sent == [
        Outgoing(topic, b"DEAL:1", b"state-1", partition=4),
        Outgoing(topic, b"DEAL:2", b"state-2", partition=2),
        Outgoing(topic, b"DEAL:1", b"state-1b", partition=4),
    ]
    # What put wrote is what Faust's own reads see, and the other way round (a recovery
    # fills the same store).
    assert table.get_bytes(b"DEAL:1") == b"state-1b" and table[b"DEAL:2"] == b"state-2"
    table.data[b"DEAL:3"] = b"recovered"
    assert table.get_bytes(b"DEAL:3") == b"recovered"
    with pytest.raises(TypeError, match="bytes"):
        table.put(b"DEAL:4", "not bytes", 1)  # type: ignore[arg-type]
    assert table.get_bytes(b"DEAL:4") is None  # a refused write is not stored either


def test_fausts_flush_before_a_commit_waits_for_the_engines_producer_first() -> None:
    steps: list[str] = []

    class FaustProducer:
        async def flush(self) -> None:
            steps.append("faust flush")

    async def confirm() -> None:
        await asyncio.sleep(0)
        steps.append("engine confirm")

    producer = FaustProducer()
    confirm_before_commit(producer, confirm)
    confirm_before_commit(producer, confirm)  # once per producer
    asyncio.run(producer.flush())
    assert steps == ["engine confirm", "faust flush"]


class _FetchingConsumer(Service):
    """What `deliver` uses of Faust's consumer: `wait_first` (mode's) and `suspend_flow`."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


def test_a_delivery_that_finishes_at_once_is_delivered_and_what_it_raises_is_raised() -> None:
    async def scenario() -> list[str]:
        consumer = _FetchingConsumer()
        delivered: list[str] = []

        async def put(message: str) -> None:
            if message == "bad":
                raise ValueError("undecodable")
            delivered.append(message)

        await deliver(consumer, put, "m-1")
        with pytest.raises(ValueError, match="undecodable"):
            await deliver(consumer, put, "bad")
        return delivered

    assert asyncio.run(scenario()) == ["m-1"]


def test_a_delivery_waiting_for_room_is_abandoned_when_a_rebalance_suspends_the_flow() -> None:
    async def scenario() -> tuple[bool, int, bool]:
        consumer = _FetchingConsumer()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("m-1")  # the stream's queue is full
        abandoned = asyncio.Event()

        async def put(message: str) -> None:
            try:
                await queue.put(message)
            except asyncio.CancelledError:
                abandoned.set()
                raise

        delivering = asyncio.ensure_future(deliver(consumer, put, "m-2"))
        for _ in range(5):
            await asyncio.sleep(0)
        waiting = not delivering.done()
        consumer.suspend_flow.set()
        await asyncio.wait_for(delivering, 5)
        return waiting, queue.qsize(), abandoned.is_set()

    assert asyncio.run(scenario()) == (True, 1, True)


def test_a_delivery_waiting_for_room_is_delivered_once_the_stream_takes_a_record() -> None:
    async def scenario() -> list[str]:
        consumer = _FetchingConsumer()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("m-1")
        delivering = asyncio.ensure_future(deliver(consumer, queue.put, "m-2"))
        for _ in range(5):
            await asyncio.sleep(0)
        taken = [await queue.get()]
        await asyncio.wait_for(delivering, 5)
        return [*taken, queue.get_nowait()]

    assert asyncio.run(scenario()) == ["m-1", "m-2"]


def test_a_fetch_loop_cancelled_mid_delivery_cancels_the_delivery() -> None:
    async def scenario() -> bool:
        consumer = _FetchingConsumer()
        started = asyncio.Event()
        abandoned = asyncio.Event()

        async def put(_message: str) -> None:
            started.set()
            try:
                await asyncio.Event().wait()  # waits for good
            except asyncio.CancelledError:
                abandoned.set()
                raise

        delivering = asyncio.ensure_future(deliver(consumer, put, "m-1"))
        await started.wait()
        delivering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await delivering
        await asyncio.wait_for(abandoned.wait(), 5)
        return abandoned.is_set()

    assert asyncio.run(scenario()) is True


def test_the_engines_app_fetches_with_the_loop_that_races_only_a_waiting_delivery() -> None:
    race_only_a_waiting_delivery()
    race_only_a_waiting_delivery()  # once per process: Faust's own loop is kept to compare
    assert faust_consumer.Consumer._drain_messages is faust_compat._drain_messages
    assert _fausts_drain_messages() is not faust_compat._drain_messages
