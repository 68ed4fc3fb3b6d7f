"""Client configurations from settings, and producing that refuses to lose a message."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import Producer

from crm_automation import kafka_clients
from crm_automation.kafka_clients import DeliveryFailed, KafkaNotConfigured, ProducerRecord
from crm_automation.settings import Settings


def _closed_port() -> int:
    # A port nothing listens on: bound, then released.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable() -> Settings:
    return Settings(kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}")


def test_producers_are_idempotent_and_wait_for_all_replicas() -> None:
    config = kafka_clients.producer_config(Settings(kafka_bootstrap_servers="k:9092"))
    assert config["bootstrap.servers"] == "k:9092"
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["partitioner"] == "murmur2_random"


def test_consumers_never_commit_or_store_offsets_on_their_own() -> None:
    config = kafka_clients.consumer_config(Settings(kafka_bootstrap_servers="k:9092"), "g")
    assert config["group.id"] == "g"
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False


def test_overrides_win_over_defaults() -> None:
    config = kafka_clients.producer_config(
        Settings(kafka_bootstrap_servers="k"), **{"linger.ms": 50}
    )
    assert config["linger.ms"] == 50


def test_without_bootstrap_servers_building_a_config_says_what_to_set() -> None:
    with pytest.raises(KafkaNotConfigured, match="CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS"):
        kafka_clients.admin_config(Settings(kafka_bootstrap_servers=None))


def test_produce_and_confirm_raises_when_the_broker_never_acknowledges() -> None:
    producer = Producer(
        kafka_clients.producer_config(_unreachable(), **{"message.timeout.ms": 300, "log_level": 0})
    )
    with pytest.raises(DeliveryFailed, match="2 of 2 messages failed"):
        kafka_clients.produce_and_confirm(
            producer,
            "t",
            [ProducerRecord(b"k", b"v1"), ProducerRecord(b"k", b"v2")],
            timeout=10.0,
        )


def test_flush_or_raise_raises_for_a_message_the_broker_never_acknowledged() -> None:
    producer = Producer(
        kafka_clients.producer_config(_unreachable(), **{"message.timeout.ms": 300, "log_level": 0})
    )
    producer.produce("t", key=b"k", value=b"v")
    with pytest.raises(DeliveryFailed, match="delivery failed topic=t"):
        kafka_clients.flush_or_raise(producer, timeout=10.0)
