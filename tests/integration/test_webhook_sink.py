"""The webhook sink on real Kafka against a local HTTPS receiver that fails, throttles,
delays, refuses and sees repeats: every webhook delivered, each idempotency key accepted
once, refusals dead-lettered with their reason and logged as failed executions."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from automation_core.model import Action, ActionMode, CallWebhook, Execution, ExecutionStatus, Item
from runtime import codec, kafka_clients, topics
from runtime.dlq import HEADER_REASON
from runtime.settings import Settings
from sinks.metrics import SinkMetrics
from sinks.webhook import process as webhook_process
from tests.helpers import wait_for
from tests.integration.support import TopicReader, run_cli, start_cli, stop_process
from tests.integration.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path)
    yield r
    r.close()


def webhook_action(url: str, mode: str, item: str = "DEAL:1") -> Action:
    return Action(
        action_id=uuid.uuid4().hex,
        rule_id="notify-erp",
        rule_version="v1",
        item_key=item,
        event_id=f"evt-{uuid.uuid4().hex[:6]}",
        stage_entry_id="evt-1",
        occurred_at=T0 - timedelta(minutes=1),
        mode=ActionMode.IMMEDIATE,
        payload=CallWebhook(
            url=url,
            pipeline_id="sales",
            stage_id="WON",
            item=Item(title="Maintenance Müller GmbH", responsible_id="u-7"),
            fields=(("mode", mode), ("title", "Won")),
        ),
    )


class Harness:
    def __init__(self, stack: Any, receiver: Receiver, **changes: Any) -> None:
        self.settings: Settings = stack.settings.model_copy(
            update={
                "topic_prefix": f"{uuid.uuid4().hex[:8]}.",
                "partitions": 3,
                "batch_size": 20,
                "webhook_allowed_hosts": ["localhost"],
                "webhook_allow_private_addresses": True,
                "webhook_secret": SecretStr(SECRET),
                "webhook_ca_file": receiver.ca_file,
                "webhook_timeout_seconds": 5.0,
                **changes,
            }
        )
        topics.create_topics(AdminClient(kafka_clients.admin_config(self.settings)), self.settings)
        self.producer = Producer(kafka_clients.producer_config(self.settings))
        self.registry = CollectorRegistry()
        self.metrics = SinkMetrics.create(self.registry)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None

    def send(self, *actions: Action) -> None:
        for action in actions:
            self.producer.produce(
                self.settings.topic(topics.ACTIONS),
                key=action.item_key.encode(),
                value=codec.encode(action),
            )
        kafka_clients.flush_or_raise(self.producer)

    def start(self) -> None:
        def target() -> None:
            try:
                webhook_process.run(self.settings, self.metrics, self.stop)
            except BaseException as exc:
                self.errors.append(exc)

        self.stop.clear()
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def halt(self) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join(30)
            assert not self.thread.is_alive()
            self.thread = None
        assert not self.errors, self.errors

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def harness(stack: Any, receiver: Receiver) -> Iterator[Harness]:
    h = Harness(stack, receiver)
    yield h
    h.halt()
    h.producer.flush(10)


def test_every_webhook_is_delivered_once_through_failures_throttling_and_repeats(
    harness: Harness, receiver: Receiver
) -> None:
    modes = ["ok"] * 12 + ["fail2"] * 3 + ["throttle"] * 2 + ["slow"] * 2
    actions = [
        webhook_action(receiver.url(), mode, item=f"DEAL:{i % 5}") for i, mode in enumerate(modes)
    ]
    harness.send(*actions)
    harness.send(*actions[:4])  # redelivered, as after a producer retry
    harness.start()

    wait_for(
        lambda: sum(receiver.applied.values()) == len(actions),
        timeout=60,
        what="every webhook applied by the receiver",
    )
    harness.halt()

    assert set(receiver.applied) == {a.action_id for a in actions}  # no key changed
    assert receiver.bad_signatures == 0
    fail2 = [a.action_id for a in actions if a.payload.fields[0][1] == "fail2"]  # type: ignore[union-attr]
    assert all(receiver.requests[k] == 3 for k in fail2)
    doc = receiver.documents[actions[0].action_id]
    assert doc["fields"] == {"mode": "ok", "title": "Won"}
    assert (doc["entity_type"], doc["item_id"], doc["stage_id"]) == ("DEAL", "0", "WON")
    assert harness.metric(
        "crm_automation_sink_writes_total", sink="webhook", kind="webhook", outcome="delivered"
    ) >= len(actions)
    assert harness.metric("crm_automation_sink_retries_total", sink="webhook") >= 3 * 2 + 2


def test_refusals_are_dead_lettered_with_their_reason_and_logged_as_failed(
    harness: Harness, receiver: Receiver
) -> None:
    rejected = webhook_action(receiver.url(), "reject")
    redirected = webhook_action(receiver.url(), "redirect")
    elsewhere = webhook_action("https://not-allowed.example.com/hook", "ok")
    plain = webhook_action(receiver.url().replace("https:", "http:"), "ok")  # not by a rule
    fine = webhook_action(receiver.url(), "ok")
    dlq = TopicReader(harness.settings, topics.DLQ)
    executions = TopicReader(harness.settings, topics.EXECUTIONS)
    harness.send(rejected, redirected, elsewhere, plain, fine)
    harness.start()
    try:
        letters = dlq.until(4, timeout=60)
        logged = executions.until(4, timeout=30)
    finally:
        dlq.close()
        executions.close()
    wait_for(lambda: receiver.applied[fine.action_id] == 1, timeout=30, what="the good one")

    reasons = {}
    for _at, message in letters:
        headers = dict(message.headers())
        assert headers["__connect.errors.connector.name"] == b"sink-webhook"
        assert headers["__connect.errors.stage"] == b"TASK_PUT"
        reasons[codec.decode_as(message.value(), Action).action_id] = headers[
            HEADER_REASON
        ].decode()
    assert reasons == {
        rejected.action_id: "webhook_rejected",
        redirected.action_id: "webhook_redirect",
        elsewhere.action_id: "webhook_host_not_allowed",
        plain.action_id: "webhook_url_not_allowed",
    }
    failed: list[Execution] = [codec.decode_as(m.value(), Execution) for _at, m in logged]
    assert {(e.action_id, e.status, e.reason) for e in failed} == {
        (rejected.action_id, ExecutionStatus.FAILED, "webhook_rejected"),
        (redirected.action_id, ExecutionStatus.FAILED, "webhook_redirect"),
        (elsewhere.action_id, ExecutionStatus.FAILED, "webhook_host_not_allowed"),
        (plain.action_id, ExecutionStatus.FAILED, "webhook_url_not_allowed"),
    }
    assert receiver.requests[elsewhere.action_id] == 0
    assert (
        harness.metric(
            "crm_automation_dlq_messages_total", process="sink_webhook", reason="webhook_rejected"
        )
        == 1
    )


def test_a_receiver_on_a_private_address_is_refused_unless_allowed(
    stack: Any, receiver: Receiver
) -> None:
    h = Harness(stack, receiver, webhook_allow_private_addresses=False)
    action = webhook_action(receiver.url(), "ok")
    dlq = TopicReader(h.settings, topics.DLQ)
    h.send(action)
    h.start()
    try:
        [(_at, letter)] = dlq.until(1, timeout=60)
    finally:
        dlq.close()
        h.halt()
    assert dict(letter.headers())[HEADER_REASON] == b"webhook_address_not_allowed"
    assert receiver.requests[action.action_id] == 0


def test_a_stop_while_a_webhook_waits_for_its_retry_commits_nothing_and_a_restart_delivers(
    harness: Harness, receiver: Receiver
) -> None:
    action = webhook_action(receiver.url(), "fail2")
    harness.send(action)
    harness.start()
    wait_for(lambda: receiver.requests[action.action_id] >= 1, timeout=60, what="a first try")
    harness.halt()  # during the backoff after a 503
    assert receiver.applied[action.action_id] == 0

    harness.start()
    wait_for(lambda: receiver.applied[action.action_id] == 1, timeout=60, what="the delivery")


E2E_RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
rules:
  - id: notify-erp
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action:
      type: webhook
      url: URL
      fields: {order_title: "Won: {{ item.title }}", contract: "{{ item.UF_CONTRACT_NO }}"}
"""


def test_a_rule_applied_with_the_cli_posts_the_won_deal_through_the_engine_and_the_sink(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(E2E_RULES.replace("URL", receiver.url()))
    applied = run_cli(settings, tmp_path, "rules", "apply", str(rules))
    assert applied.returncode == 0, applied.stderr
    webhook_env = {
        "CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS": '["localhost"]',
        "CRM_AUTOMATION_WEBHOOK_SECRET": SECRET,
        "CRM_AUTOMATION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "CRM_AUTOMATION_WEBHOOK_CA_FILE": str(receiver.ca_file),
        "CRM_AUTOMATION_SINK_WEBHOOK_METRICS_PORT": "0",
    }
    processes = [
        start_cli(settings, tmp_path, "engine"),
        start_cli(settings, tmp_path, "sink", "webhook", **webhook_env),
    ]
    try:
        event = {
            "event_id": "evt-won-1",
            "occurred_at": "2026-11-26T10:00:00Z",
            "entity_type": "DEAL",
            "item_id": "4711",
            "pipeline_id": "sales",
            "stage_id": "WON",
            "item": {
                "title": "Maintenance Müller GmbH",
                "responsible_id": "u-7",
                "contacts": [],
                "fields": {"UF_CONTRACT_NO": "MV-17"},
            },
        }
        produced = run_cli(
            settings, tmp_path, "events", "produce", "-", input_text=json.dumps(event)
        )
        assert produced.returncode == 0, produced.stderr
        wait_for(lambda: len(receiver.applied) == 1, timeout=120, what="the webhook")
    finally:
        codes = [stop_process(p) for p in processes]
    assert codes == [0, 0]
    [doc] = receiver.documents.values()
    assert doc["rule_id"] == "notify-erp"
    assert (doc["item_id"], doc["stage_id"], doc["event_id"]) == ("4711", "WON", "evt-won-1")
    assert doc["fields"] == {"order_title": "Won: Maintenance Müller GmbH", "contract": "MV-17"}
    assert receiver.bad_signatures == 0


def test_the_sink_refuses_to_start_without_a_secret_in_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    env = {"CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS": '["erp.example.com"]'}
    process = start_cli(settings, tmp_path, "sink", "webhook", **env)
    assert process.wait(timeout=60) == 2
    [log] = tmp_path.glob("sink-webhook-*.log")
    assert log.read_text().strip().splitlines() == [
        "error: no webhook signing secret: set CRM_AUTOMATION_WEBHOOK_SECRET "
        "(receivers verify each request's HMAC-SHA256 signature with it)"
    ]
