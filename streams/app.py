"""The engine's Faust app, built from settings; nothing connects at import time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import uvloop
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from runtime import kafka_clients, topics
from runtime.health import Readiness
from runtime.settings import EventLoop, Settings
from streams.faust_compat import (
    ProducedChangelogTable,
    RulesTable,
    confirm_before_commit,
    install_recovery_seek,
    race_only_a_waiting_delivery,
    shorten_fetch_wait,
)
from streams.handler import Source, StageChangeHandler
from streams.metrics import EngineMetrics
from streams.outbox import ConfirmingProducer
from streams.rules_registry import RulesRegistry
from streams.state_codec import state_from_bytes, state_to_bytes

logger = logging.getLogger(__name__)

APP_ID = "crm-automation-engine"


def group_id(settings: Settings) -> str:
    """The engine's app id, which Faust also uses as its consumer group."""
    return f"{settings.topic_prefix}{APP_ID}"


def use_event_loop(name: EventLoop) -> None:
    """Make `name` the event loop of the Faust worker about to start; call before the
    app is built (whatever takes the loop early must take this one)."""
    policy = uvloop.EventLoopPolicy() if name == "uvloop" else asyncio.DefaultEventLoopPolicy()
    asyncio.set_event_loop_policy(policy)


def faust_app(settings: Settings, app_id: str) -> faust.App:
    """The engine's Faust app with its settings, nothing in it yet (bench/faust_floor.py
    runs the same app around an agent that does nothing, to measure Faust's own cost)."""
    if not settings.kafka_bootstrap_servers:
        raise RuntimeError("no Kafka configured: set CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS")
    shorten_fetch_wait()
    race_only_a_waiting_delivery()
    return faust.App(
        app_id,
        broker=[f"kafka://{s}" for s in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        # Faust's default is `<app id>-data` in the working directory: keep it in the home.
        datadir=str(settings.home / "engine-data"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Faust's 60 s session timeout kept a crashed worker in the group for a minute:
        # its replacement's join waited for it, and the whole group, every partition,
        # stood still meanwhile (~2 min after two kills in the reliability suite).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        **kafka_clients.faust_security_options(settings),
    )


def build_engine(
    settings: Settings,
    registry: CollectorRegistry,
    producer: Producer | None = None,
    readiness: Readiness | None = None,
) -> faust.App:
    """The Faust app: rules GlobalTable, per-item state table, the stage-changes agent."""
    app = faust_app(settings, group_id(settings))
    metrics = EngineMetrics.create(registry)
    rules = RulesRegistry()

    rules_read: dict[Any, int] = {}
    """Per partition of the rules topic, the offset after the last record applied."""

    async def on_rule_record(event: Any) -> None:
        rules.apply(event.message.key, event.message.value)
        rules_read[event.message.tp] = event.message.offset + 1
        metrics.rules_loaded.set(len(rules))

    rules_topic = app.topic(
        settings.topic(topics.RULES), key_type=bytes, value_type=bytes, partitions=1
    )
    # Every worker holds all rules. partitions=1 and recovery_buffer_size=1 are the
    # documented workaround for GlobalTable recovery loops (faust GlobalTable docstring).
    rules_table = RulesTable(
        app,
        name="rules",
        beacon=app.tables.beacon,
        # Written by `rules apply` (another client): every worker reads all of it.
        synchronize_all_active_partitions=True,
        is_global=True,
        key_type=bytes,
        value_type=bytes,
        partitions=1,
        changelog_topic=rules_topic,
        recovery_buffer_size=1,
        on_changelog_event=on_rule_record,
    )
    app.tables.add(rules_table)
    out = ConfirmingProducer(producer or Producer(kafka_clients.producer_config(settings)))
    state = ProducedChangelogTable.of_bytes(
        app, "item-state", send=out.send, partitions=settings.partitions
    )
    events_topic_name = settings.topic(topics.STAGE_CHANGES)
    events_topic = app.topic(events_topic_name, key_type=bytes, value_type=bytes)
    handler = StageChangeHandler(settings, rules, metrics)

    @app.on_rebalance_complete.connect
    async def read_new_partitions_from_the_start(
        sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        # Sent before Faust's seek to committed offsets, in both recovery paths; the
        # replacement seek serves that one and every later one (see faust_compat).
        install_recovery_seek(
            app.consumer,
            events_topic_name,
            readiness,
            applied=(rules_topic.get_topic_name(), rules_read),
        )
        # The item-state changelog goes through `out`: confirmed before Faust commits.
        confirm_before_commit(app.producer, out.confirm)
        rules.index  # noqa: B018 - built now, not inside the first batch after a rebalance
        assigned = app.consumer.assignment()
        if readiness is not None and not any(tp.topic == events_topic_name for tp in assigned):
            readiness.ready()  # in the group, with no partition of the events topic

    if readiness is not None:

        @app.on_partitions_revoked.connect
        async def not_ready_while_rebalancing(
            sender: Any, /, *args: Any, signal: Any, **kwargs: Any
        ) -> None:
            readiness.not_ready("consuming", "rebalancing")

    @app.agent(events_topic)
    async def process(stream: Any) -> None:
        logger.info("engine agent started on %s", type(asyncio.get_running_loop()).__module__)
        async for batch in stream.take_events(
            settings.batch_size, within=settings.engine_batch_window_seconds
        ):
            started = time.perf_counter()
            # The batch's new states, written to the table only once its outputs are
            # confirmed: a state that reached the changelog before the actions it
            # promises would make a restarted engine drop those events as already seen.
            new_states: dict[bytes, tuple[int, bytes]] = {}
            for event in batch:
                message = event.message
                pending = new_states.get(message.key)
                handled = handler.handle(
                    message.key,
                    message.value,
                    state_from_bytes(pending[1] if pending else state.get_bytes(message.key)),
                    Source(message.topic, message.partition, message.offset),
                )
                if handled.new_state is not None:
                    new_states[message.key] = (message.partition, state_to_bytes(handled.new_state))
                for record in handled.out:
                    out.send(record)
            # The batch's counts, once per batch: what was evaluated shows even while
            # Kafka refuses or delays its outputs (the confirmation below then waits).
            handler.publish_counts()
            # Confirmed before this iteration ends, i.e. before Faust acks the batch.
            # The new states are sent after it and confirmed with the next batch or at
            # the latest before Faust commits the batch's offsets (confirm_before_commit).
            with metrics.confirm_seconds.time():
                await out.confirm()
            for key, (partition, new_state) in new_states.items():
                state.put(key, new_state, partition)
            metrics.batch_seconds.observe(time.perf_counter() - started)

    return app
