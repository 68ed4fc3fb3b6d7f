"""Client configurations from settings, and producing that refuses to lose a message."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import Producer

from runtime import kafka_clients
from runtime.kafka_clients import DeliveryFailed, KafkaNotConfigured, Outgoing
from runtime.settings import Settings


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
    with pytest.raises(DeliveryFailed, match="2 of 2 records failed"):
        kafka_clients.produce_and_confirm(
            producer,
            [Outgoing("t", b"k", b"v1"), Outgoing("t", b"k", b"v2")],
            timeout=10.0,
        )


def test_records_the_broker_never_acknowledges_are_not_reported_as_confirmed() -> None:
    producer = Producer(
        kafka_clients.producer_config(_unreachable(), **{"message.timeout.ms": 300, "log_level": 0})
    )
    confirmed: list[None] = []
    with pytest.raises(DeliveryFailed):
        kafka_clients.produce_and_confirm(
            producer,
            [Outgoing("t", b"k", b"v1")],
            timeout=10.0,
            on_confirmed=lambda: confirmed.append(None),
        )
    assert confirmed == []


def test_a_full_local_queue_makes_produce_wait_for_room_instead_of_raising() -> None:
    # A queue of one message: the second produce finds it full until the first one's
    # delivery times out and frees it. Every record still gets its delivery report.
    producer = Producer(
        kafka_clients.producer_config(
            _unreachable(),
            **{"message.timeout.ms": 300, "queue.buffering.max.messages": 1, "log_level": 0},
        )
    )
    with pytest.raises(DeliveryFailed, match="3 of 3 records failed"):
        kafka_clients.produce_and_confirm(
            producer, [Outgoing("t", b"k", b"v%d" % n) for n in range(3)], timeout=10.0
        )


def test_flush_or_raise_raises_for_a_message_the_broker_never_acknowledged() -> None:
    producer = Producer(
        kafka_clients.producer_config(_unreachable(), **{"message.timeout.ms": 300, "log_level": 0})
    )
    producer.produce("t", key=b"k", value=b"v")
    with pytest.raises(DeliveryFailed, match="delivery failed topic=t"):
        kafka_clients.flush_or_raise(producer, timeout=10.0)


def _secured(**fields: object) -> Settings:
    return Settings.model_validate(
        {
            "kafka_bootstrap_servers": "k:9093",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "alice",
            "kafka_sasl_password": "s3cret-pw",
            **fields,
        }
    )


def test_plaintext_is_the_default_and_adds_no_security_keys() -> None:
    config = kafka_clients.consumer_config(Settings(kafka_bootstrap_servers="k:9092"), "g")
    assert not [key for key in config if key.startswith(("security.", "sasl.", "ssl."))]
    assert kafka_clients.faust_security_options(Settings(kafka_bootstrap_servers="k")) == {}


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda s: kafka_clients.producer_config(s), id="producer"),
        pytest.param(lambda s: kafka_clients.consumer_config(s, "g"), id="consumer"),
        pytest.param(lambda s: kafka_clients.admin_config(s), id="admin"),
    ],
)
def test_sasl_ssl_settings_reach_every_confluent_client_config(build: Any, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    config = build(_secured(kafka_ssl_ca_location=ca))
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "alice"
    assert config["sasl.password"] == "s3cret-pw"
    assert config["ssl.ca.location"] == str(ca)


def test_sasl_without_credentials_says_which_variables_to_set() -> None:
    with pytest.raises(KafkaNotConfigured, match="CRM_AUTOMATION_KAFKA_SASL_PASSWORD"):
        kafka_clients.producer_config(_secured(kafka_sasl_password=None))


def test_faust_gets_sasl_credentials_with_a_tls_context_for_sasl_ssl(tmp_path: Path) -> None:
    ca = _self_signed_ca_pem(tmp_path)
    options = kafka_clients.faust_security_options(_secured(kafka_ssl_ca_location=ca))
    credentials = options["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"  # with an ssl_context, not SASL_PLAINTEXT
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("alice", "s3cret-pw")
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert len(credentials.ssl_context.get_ca_certs()) == 1  # exactly the configured CA


def test_faust_gets_sasl_plaintext_without_tls_for_sasl_plaintext() -> None:
    options = kafka_clients.faust_security_options(
        _secured(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256")
    )
    credentials = options["broker_credentials"]
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.ssl_context is None


def test_the_sasl_password_never_appears_in_the_settings_repr() -> None:
    s = _secured()
    assert "s3cret-pw" not in repr(s)
    assert "s3cret-pw" not in str(s.model_dump())


def _self_signed_ca_pem(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(path), "-days", "1",
         "-subj", "/CN=test CA"],
        check=True, capture_output=True,
    )  # fmt: skip
    return path
