"""confluent-kafka client configurations built from Settings, and confirmed producing."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from automation_core.fast_init import fast_init
from runtime.settings import Settings

logger = logging.getLogger(__name__)

Config = dict[str, Any]


class KafkaNotConfigured(RuntimeError):
    """No bootstrap servers: neither configured nor provided by the local stack."""


class KafkaAuthenticationFailed(RuntimeError):
    """The broker refused our credentials or TLS handshake: retrying will not help."""


class DeliveryFailed(Exception):
    """A produced message was not acknowledged by the broker (retryable: ids are stable)."""


@fast_init
@dataclass(frozen=True)
class Outgoing:
    """A record to produce: the one record type of every producer here."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None
    partition: int | None = None
    """None: the producer's partitioner chooses from the key."""


def _security_config(settings: Settings) -> Config:
    """librdkafka's security keys; every client config below goes through here."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config: Config = {"security.protocol": protocol.lower()}
    if protocol in ("SSL", "SASL_SSL") and settings.kafka_ssl_ca_location is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        username, password = _sasl_credentials(settings)
        config.update(
            {
                "sasl.mechanism": settings.kafka_sasl_mechanism,
                "sasl.username": username,
                "sasl.password": password,
            }
        )
    return config


def _sasl_credentials(settings: Settings) -> tuple[str, str]:
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise KafkaNotConfigured(
            f"security protocol {settings.kafka_security_protocol} needs credentials: set "
            "CRM_AUTOMATION_KAFKA_SASL_USERNAME and CRM_AUTOMATION_KAFKA_SASL_PASSWORD"
        )
    return settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()


def faust_security_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `faust.App` (broker_credentials) matching `_security_config`.

    Faust's SASLCredentials without an ssl_context means SASL_PLAINTEXT: SASL_SSL needs
    the context, built from the configured CA file (or the system's CAs).
    """
    import faust  # here, not at module level: only the engine pays for importing Faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        cafile = settings.kafka_ssl_ca_location
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    username, password = _sasl_credentials(settings)
    credentials = faust.SASLCredentials(
        mechanism=settings.kafka_sasl_mechanism,
        username=username,
        password=password,
        ssl_context=context,
    )
    return {"broker_credentials": credentials}


# Errors that mean "wrong credentials or TLS set-up": librdkafka would retry them forever.
_AUTHENTICATION_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})


def _raise_on_authentication_error(error: KafkaError) -> None:
    # confluent-kafka re-raises a callback's exception from the poll()/flush()/consume()
    # that served it: a client with refused credentials fails fast instead of retrying.
    if error.code() in _AUTHENTICATION_ERRORS:
        raise KafkaAuthenticationFailed(f"Kafka refused the connection: {error.str()}")
    logger.warning("kafka client error code=%s: %s", error.name(), error.str())


def await_admin(admin: AdminClient, futures: Iterable[Future[Any]], timeout: float) -> None:
    """Wait for admin request futures while serving the client's callbacks.

    Polling serves the error callback, so refused credentials raise
    `KafkaAuthenticationFailed` at once instead of the request timing out.
    """
    pending = list(futures)
    deadline = time.monotonic() + timeout
    while any(not f.done() for f in pending) and time.monotonic() < deadline:
        admin.poll(0.1)


def _common_config(settings: Settings) -> Config:
    if not settings.kafka_bootstrap_servers:
        raise KafkaNotConfigured(
            "no Kafka configured: set CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS "
            "(`crm-automation stack status` shows the local one)"
        )
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        # librdkafka's own log lines (e.g. authentication failures) through Python logging,
        # so they follow the configured format (JSON or text) instead of raw stderr.
        "logger": logging.getLogger("librdkafka"),
        "error_cb": _raise_on_authentication_error,
        **_security_config(settings),
    }


def _raise_on_failed_delivery(error: KafkaError | None, message: Message) -> None:
    # The default delivery callback: confluent-kafka re-raises a callback's exception from
    # the poll()/flush() that served it, so a lost message cannot pass unnoticed. A
    # per-message on_delivery (as ConfirmingProducer passes) replaces this one.
    if error is not None:
        raise DeliveryFailed(f"delivery failed topic={message.topic()} error={error}")


def producer_config(settings: Settings, **overrides: Any) -> Config:
    """Idempotent, acks=all, a few ms of linger for batching; failed deliveries raise."""
    return {
        **_common_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # librdkafka's default (consistent_random, CRC32) places a key on another
        # partition than Java clients and aiokafka/Faust (murmur2) do: with mixed
        # producers one item's events would split across partitions and lose their order.
        "partitioner": "murmur2_random",
        "on_delivery": _raise_on_failed_delivery,
        **overrides,
    }


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> Config:
    """Offsets are stored and committed by the caller, only after processing."""
    return {
        **_common_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # librdkafka's 45 s kept a killed process in its group that long: the restarted
        # one's join waited for it and the group's partitions stood still meanwhile.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 3_000,
        **overrides,
    }


def admin_config(settings: Settings, **overrides: Any) -> Config:
    return {**_common_config(settings), **overrides}


def _flush(producer: Producer, timeout: float) -> int:
    """`producer.flush(timeout)` in short slices: a callback's exception (e.g. refused
    credentials) surfaces when a slice returns, not only after the whole timeout."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = int(producer.flush(min(0.5, max(0.0, deadline - time.monotonic()))))
        if not remaining or time.monotonic() >= deadline:
            return remaining


def flush_or_raise(producer: Producer, timeout: float = 30.0) -> None:
    """Wait for every queued message; raise `DeliveryFailed` if any is not acknowledged.

    Failed deliveries raise through the default callback of `producer_config`; messages
    still queued after `timeout` raise here.
    """
    remaining = _flush(producer, timeout)
    if remaining:
        raise DeliveryFailed(f"{remaining} messages not acknowledged within {timeout}s")


def produce(
    producer: Producer,
    record: Outgoing,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """Queue `record` with its own delivery callback; while librdkafka's local queue is
    full, serve callbacks (which frees room) and try again."""
    while True:
        try:
            producer.produce(
                record.topic,
                key=record.key,
                value=record.value,
                # confluent-kafka's "let the partitioner choose" is -1, not None.
                partition=-1 if record.partition is None else record.partition,
                headers=record.headers or None,
                on_delivery=on_delivery,
            )
            return
        except BufferError:
            producer.poll(0.1)


def produce_and_confirm(
    producer: Producer,
    records: Iterable[Outgoing],
    timeout: float = 30.0,
    on_confirmed: Callable[[], None] | None = None,
) -> int:
    """Produce `records`, wait for all of them, raise `DeliveryFailed` if any was not
    delivered (also for records of earlier calls still queued). Returns the number of
    records acknowledged. Records may come from a generator: they are produced as read.
    `on_confirmed` is called once per record the broker acknowledged, in this thread, as
    the acknowledgements arrive (for progress reports: the call is not done until it returns).
    """
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)
        elif on_confirmed is not None:
            on_confirmed()

    count = 0
    try:
        for record in records:
            produce(producer, record, on_delivery)
            count += 1
        remaining = _flush(producer, timeout)
    except KafkaAuthenticationFailed:
        # Nothing can be delivered: drop the queue, or closing the producer waits for it.
        producer.purge()
        raise
    if failures or remaining:
        first = f"; first error: {failures[0]}" if failures else ""
        raise DeliveryFailed(
            f"{len(failures)} of {count} records failed and {remaining} unconfirmed{first}"
        )
    logger.debug("confirmed records=%d", count)
    return count


def read_to_end(settings: Settings, topic: str, group: str, timeout: float = 30.0) -> list[Message]:
    """Every message `topic` holds now, from each partition's first offset to its end, in
    offset order per partition; partitions are assigned (no group join, nothing
    committed). RuntimeError when the topic is not available or a read stops short."""
    consumer = Consumer(consumer_config(settings, group))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        if metadata.topics[topic].error is not None:
            raise RuntimeError(
                f"topic {topic} is not available: run `crm-automation topics create`"
            )
        spans = {
            p: _watermarks(consumer, TopicPartition(topic, p), timeout)
            for p in metadata.topics[topic].partitions
        }
        pending = {p for p, (low, high) in spans.items() if high > low}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        found: list[Message] = []
        while pending:
            message = consumer.poll(timeout)
            if message is None:
                raise RuntimeError(f"timed out reading {topic}")
            if message.error() is not None:
                continue
            found.append(message)
            partition, offset = message.partition() or 0, message.offset() or 0
            if offset + 1 >= spans[partition][1]:
                pending.discard(partition)
    finally:
        consumer.close()
    return found


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """Low and high watermarks, waiting out a just-created topic that has no leader yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            return int(low), int(high)
        except KafkaException:
            # NOT_LEADER_FOR_PARTITION is not flagged retriable, yet passes in a moment.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
