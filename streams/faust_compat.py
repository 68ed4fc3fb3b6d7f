"""Every touch of faust-streaming, aiokafka and mode internals, for the exact versions pinned.

Faust's public API does not cover what the engine needs at eight points. Each patch
below names the upstream code it relies on; `tests/unit/test_faust_compat.py` holds
a test per patch that fails when that code changes, and `check_versions` refuses to
start the engine on other versions than `PINNED`:

1. `RulesTable`: a GlobalTable whose changelog is our own `automation.rules` topic.
2. `ProducedChangelogTable.get_bytes` and `put`: the item-state table's memory store read
   and written as the dict it holds (`Collection.data`, `faust.stores.memory.Store.data`),
   with the changelog partition given by the caller (the event's). Faust's `table[key]`
   costs a sensor call per access and a KeyError per key never set, and derives a write's
   partition from the current event, which after a `take_events` batch is the batch's last.
3. `install_recovery_seek`: the consumer's `perform_seek`, which Faust runs after every
   rebalance (`Recovery.on_recovery_completed` / `_resume_streams`) and whenever its
   fetcher returns records while the flow is stopped. Faust resumes the stream
   partitions, seeks, then clears every stream queue (`flow_control.resume()`) and only
   then resumes the flow: records its fetcher delivered between the seek and the clear
   were thrown away unacknowledged and never fetched again (upstream issue #596), so the
   group's commits stood still behind the hole. Ours stops the flow first, so nothing is
   delivered until Faust's own clear-then-resume; reads the committed offsets once;
   positions never-committed partitions at their first offset through Faust's own
   read-offset bookkeeping, instead of leaving them where the fetcher had got to; and
   puts the rules partition back after the last rule applied, so a rule published
   during a rebalance is never dropped by that clear.
4. `guard_head_gaps`: Faust's commit guard (`Consumer._new_offset`) skips the check for a
   hole before the first acknowledged offset when the partition has no committed offset
   (or 0): a lost block at the start of a partition could be committed past. The guard
   holds such a partition's commit until its first offset is acknowledged.
5. `shorten_fetch_wait`: Faust creates its aiokafka consumer with a fixed
   `fetch_max_wait_ms=1500`. aiokafka leaves a partition whose fetched records are not
   consumed yet out of the next fetch request and sends no other request to that broker
   while one is in flight: when only idle partitions (the rules topic) were in it, the
   broker held it 1.5 s and every event partition waited behind it (an engine latency
   p50 of ~1 s at 500 events/s in half the runs of bench/latency_bench.py --quick).
6. `ProducedChangelogTable`: a Table whose changelog records go through the engine's
   confluent-kafka producer (`Table.on_key_set` → `send_changelog`), not Faust's
   aiokafka producer, whose Python record building and sending on the engine's threads
   cost the engine a quarter of its throughput (BENCHMARKS.md, issue 13).
7. `confirm_before_commit`: Faust's consumer flushes its producer before every offset
   commit (`Consumer._commit_offsets`, also on revocation and at stop), which is what
   makes a table's changelog durable before the offsets it follows are committed; the
   flush now also waits for the engine's producer, which carries the changelog of 6.
8. `race_only_a_waiting_delivery`: Faust's fetch loop (`Consumer._drain_messages`)
   hands each record to the conductor through `wait_first(callback(message),
   suspend_flow.wait())`, which makes four tasks and an `asyncio.wait` per record (Faust
   alone: 85-112 µs of CPU per event with it, 63-73 without, BENCHMARKS.md) so that a
   delivery waiting on a full queue is abandoned when a rebalance suspends the flow. The
   loop is Faust's, except that the delivery runs as one task first and is raced only if
   it has not finished after one turn of the event loop: the same race, for the
   deliveries that wait.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from runtime.health import Readiness
from runtime.kafka_clients import Outgoing

logger = logging.getLogger(__name__)

PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}
"""The versions whose internals this module was written against (pyproject pins them)."""

FETCH_MAX_WAIT_MS = 50
"""How long the broker may hold one fetch request of the engine's consumer for data."""

ATTEMPTS = 5
BACKOFF_SECONDS = 0.5


class IncompatibleFaust(RuntimeError):
    """The installed faust-streaming or aiokafka is not the version the engine supports."""


def check_versions() -> None:
    """Raise `IncompatibleFaust` naming every package whose installed version differs."""
    found = {name: importlib.metadata.version(name) for name in PINNED}
    wrong = [f"{n} {found[n]} (needs {v})" for n, v in PINNED.items() if found[n] != v]
    if wrong:
        raise IncompatibleFaust(
            "the engine patches Faust internals and supports exactly "
            + ", ".join(f"{n}=={v}" for n, v in PINNED.items())
            + "; installed: "
            + ", ".join(wrong)
            + ". Reinstall with `pip install -e .` (pyproject pins them)."
        )


class RulesTable(faust.GlobalTable):
    """A GlobalTable whose changelog is our own `automation.rules` topic.

    Faust's assignor looks up a global table's partitions under the default changelog
    name (`<app>-<table>-changelog`), not the configured changelog topic: with a custom
    topic the leader's assignment raises KeyError and the worker hangs after "performing
    partition assignments". Naming the real topic fixes it.
    """

    def _changelog_topic_name(self) -> str:
        return str(self.changelog_topic.get_topic_name())


class _Partition(NamedTuple):
    partition: int


class _Sent(NamedTuple):
    """What `Table.on_key_set` reads of `send_changelog`'s result."""

    message: _Partition


class ProducedChangelogTable(faust.Table):  # type: ignore[type-arg]
    """A Table whose changelog records are handed to `send` (the engine's confluent-kafka
    producer) instead of Faust's aiokafka producer.

    Keys and values are bytes (raw serializers). The engine reads and writes it with
    `get_bytes` and `put`, straight on the memory store's dict: Faust's `table[key]`
    goes through a sensor call per read and write, a KeyError for every key never set
    (most keys of a stream of new items) and, for a write, the current event's
    partition. `table[key] = value` still works (its record then goes to the partition
    Faust chose from the current event). Faust still creates the changelog topic and
    recovers the table from it into the same store; `confirm_before_commit` makes the
    records durable before commits.
    """

    def __init__(self, app: Any, *, send: Callable[[Outgoing], None], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._send = send

    @classmethod
    def of_bytes(
        cls, app: Any, name: str, *, send: Callable[[Outgoing], None], partitions: int
    ) -> ProducedChangelogTable:
        """A bytes-to-bytes table `name` of `app`, added to its tables as `app.Table` does."""
        table = cls(
            app,
            send=send,
            name=name,
            beacon=app.tables.beacon,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
        )
        app.tables.add(table)
        return table

    def get_bytes(self, key: bytes) -> bytes | None:
        """`table.get(key)`: the memory store's value, None for a key never set."""
        value: bytes | None = self.data.data.get(key)
        return value

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        """`table[key] = value` for an event of `partition`: its changelog record to that
        partition, then the store. What Faust's `Table.on_key_set` does besides is a key
        expiry for windowed tables (not this one) and the sensors' write count."""
        self.send_changelog(partition, key, value)
        self.data.data[key] = value

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        if partition is None or not isinstance(key, bytes):
            raise TypeError("a changelog record needs the event's partition and a bytes key")
        if value is not None and not isinstance(value, bytes):
            raise TypeError(f"a changelog value must be bytes, not {type(value).__name__}")
        topic = self.changelog_topic.get_topic_name()
        self._send(Outgoing(topic, key, value, partition=partition))
        return _Sent(_Partition(partition))


def confirm_before_commit(producer: Any, confirm: Callable[[], Awaitable[None]]) -> None:
    """Make Faust's `producer.flush` await `confirm` first (once per producer).

    Faust awaits that flush before every offset commit, on revocation and at stop, so
    whatever `confirm` waits for is acknowledged before the offsets it follows are
    committed.
    """
    if getattr(producer, "_crm_confirm_before_commit", False):
        return
    faust_flush: Callable[[], Awaitable[None]] = producer.flush

    async def flush() -> None:
        await confirm()
        await faust_flush()

    producer.flush = flush
    producer._crm_confirm_before_commit = True


def shorten_fetch_wait(max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make Faust's worker consumers wait at most `max_wait_ms` per fetch (once per process).

    Set on the aiokafka consumer after Faust creates it and before it starts: its
    `start()` hands `_fetch_max_wait_ms` to the fetcher it creates.
    """
    thread_class: Any = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_class, "_crm_fetch_wait", None) == max_wait_ms:
        return
    create = getattr(thread_class, "_crm_faust_create", thread_class._create_worker_consumer)

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    thread_class._crm_faust_create = create
    thread_class._create_worker_consumer = create_worker_consumer
    thread_class._crm_fetch_wait = max_wait_ms


def race_only_a_waiting_delivery() -> None:
    """Give Faust's consumers the fetch loop of patch 8 (once per process)."""
    consumer_class: Any = faust_consumer.Consumer
    if consumer_class._drain_messages is _drain_messages:
        return
    consumer_class._crm_faust_drain_messages = consumer_class._drain_messages
    consumer_class._drain_messages = _drain_messages


async def deliver(consumer: Any, callback: Callable[[Any], Awaitable[Any]], message: Any) -> None:
    """`await consumer.wait_first(callback(message), consumer.suspend_flow.wait())`, as
    Faust's fetch loop does per record, without its four tasks for a delivery that
    finishes at once: most do (the stream's queue has room, the flow runs)."""
    delivery = asyncio.ensure_future(callback(message))
    try:
        await asyncio.sleep(0)  # the delivery's first step runs in this turn
    except BaseException:
        delivery.cancel()  # as wait_first's cleanup would
        raise
    if delivery.done():
        delivery.result()  # what it raised, wait_first raises
        return
    await consumer.wait_first(delivery, consumer.suspend_flow.wait())


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's
    # Faust 0.15.3's Consumer._drain_messages, with `deliver` for its per-record
    # wait_first; the rest as upstream wrote it (same order, same checks).
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        await deliver(self, callback, message)
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


async def _seek_done() -> None:
    return None


after_recovery_seek: Callable[[], Awaitable[None]] = _seek_done
"""Awaited at the end of every recovery seek: the partitions positioned, the flow
stopped, Faust's queue clear and resume still to come. Does nothing unless replaced."""


def install_recovery_seek(
    consumer: Any,
    topic: str,
    readiness: Readiness | None = None,
    *,
    applied: tuple[str, Mapping[Any, int]] | None = None,
) -> None:
    """Replace `consumer.perform_seek` (once) with the stop-the-flow-first seek above.

    `applied` names a changelog topic whose records the engine applies itself (the
    rules) and, per partition, the offset after the last record applied: its partitions
    are sought there, so a record Faust's queue clear dropped is read again (applying a
    compacted topic's records again, in order, is harmless).

    Each seek ends by awaiting `after_recovery_seek`.
    """
    if getattr(consumer, "_crm_recovery_seek", False):
        return
    head_floors: dict[Any, int] = {}

    async def perform_seek() -> None:
        consumer.stop_flow()  # Faust resumes it only after clearing the stream queues
        committed = await _committed_offsets(consumer)  # also seeks committed partitions
        read_offset = consumer._read_offset
        read_offset.update(
            {tp: o if o is not None and o >= 0 else None for tp, o in committed.items()}
        )
        consumer._committed_offset.update(
            {tp: o if o else None for tp, o in committed.items() if o is not None}
        )
        stream_tps = [tp for tp in consumer.assignment() if tp.topic == topic]
        fresh = [tp for tp in stream_tps if not committed.get(tp)]
        for tp in stream_tps:
            head_floors.pop(tp, None)
        if fresh:
            # Offset 0 may be gone to retention: the first offset the broker still has.
            starts = await consumer.earliest_offsets(*fresh)
            logger.info("no committed offset: reading from the first offset partitions=%s", fresh)
            await consumer.seek_wait({tp: starts[tp] for tp in fresh})
            for tp in fresh:
                read_offset[tp] = starts[tp] if starts[tp] else None
                head_floors[tp] = starts[tp]
        if applied is not None:
            changelog, next_offsets = applied
            targets = {
                tp: next_offsets.get(tp, 0) for tp in consumer.assignment() if tp.topic == changelog
            }
            if targets:
                await consumer.seek_wait(targets)
                read_offset.update({tp: o if o else None for tp, o in targets.items()})
        await after_recovery_seek()
        if readiness is not None:
            readiness.ready()

    consumer.perform_seek = perform_seek
    guard_head_gaps(consumer, head_floors)
    consumer._crm_recovery_seek = True


def guard_head_gaps(consumer: Any, head_floors: Mapping[Any, int]) -> None:
    """Hold the commit of a partition without a committed offset until its first offset
    (`head_floors[tp]`) is acknowledged; Faust's own rule applies to every other one.

    The tolerance of one offset is Faust's own (its guard allows `min(acked)` to be one
    past the committed offset, as a transaction marker may take that offset).
    """
    faust_new_offset: Callable[[Any], int | None] = consumer._new_offset

    def new_offset(tp: Any) -> int | None:
        floor = head_floors.get(tp)
        acked = consumer._acked[tp]
        if floor is not None and acked and not consumer._committed_offset[tp]:
            if min(acked) - floor > 1:
                return None
        return faust_new_offset(tp)

    consumer._new_offset = new_offset


async def _committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The group's committed offsets (Faust's consumer seeks to them), retried: the
    coordinator may be unavailable for a moment while the broker or the group starts.
    The last attempt's error reaches the caller."""
    seek: Callable[[], Awaitable[Mapping[Any, int | None]]] = consumer.seek_to_committed
    for attempt in range(1, ATTEMPTS):
        try:
            return await seek()
        except Exception as exc:  # noqa: BLE001 - e.g. coordinator not available yet
            logger.warning("reading committed offsets failed attempt=%s error=%s", attempt, exc)
            await asyncio.sleep(BACKOFF_SECONDS * attempt)
    return await seek()


def partition_state(consumer: Any, topic: str) -> str:
    """Faust's books for `topic`'s partitions, one `key=value` group each, for a stall
    report: committed and read offsets, the acknowledged offsets not yet committed
    (count, lowest, highest) and the gaps Faust knows of."""
    parts = []
    for tp in sorted((tp for tp in consumer.assignment() if tp.topic == topic), key=str):
        acked = list(consumer._acked.get(tp, ()))
        gaps = [(i.begin, i.end) for i in sorted(consumer._gap.get(tp, ()))]
        parts.append(
            f"partition={tp.partition} committed={consumer._committed_offset.get(tp)} "
            f"read={consumer._read_offset.get(tp)} acked={len(acked)}"
            + (f"[{min(acked)}..{max(acked)}]" if acked else "")
            + f" gaps={gaps}"
        )
    return "; ".join(parts) or "no partition assigned"
