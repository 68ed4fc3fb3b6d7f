"""`crm-automation sink webhook`: webhook actions POSTed to their receivers.

A step on the runtime's consume loop with offsets in Kafka, committed once every webhook
of a batch is delivered or dead-lettered. Each webhook is retried on its own (5xx, 429
honouring Retry-After, network errors) with jittered backoff, for up to
`webhook_give_up_seconds`; a refusal (4xx, a host not allowed) is dead-lettered at once
with its reason, and a `failed` execution says so in the execution log. A redelivered
webhook carries the same `Idempotency-Key` (its action id), so receivers apply it once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from confluent_kafka import Producer

from automation_core.model import (
    Action,
    ActionMode,
    CallWebhook,
    Execution,
    ExecutionStatus,
)
from runtime import codec, kafka_clients, topics
from runtime.clock import Clock, SystemClock
from runtime.consume import Batch, DeadLetters, decode_as
from runtime.dlq import STAGE_TASK_PUT, ConsumedMessage, DeadLetter, dead_letter_of
from runtime.health import Readiness
from runtime.kafka_clients import Outgoing
from runtime.retry import Backoff
from runtime.settings import Settings
from sinks.loop import sink_loop
from sinks.metrics import SinkMetrics
from sinks.webhook.delivery import Refused, Unavailable, WebhookClient, WebhookConfig

logger = logging.getLogger(__name__)

GROUP = "crm-automation-sink-webhook"
SINK = "webhook"


class Interrupted(Exception):
    """A stop came while a webhook waited for its next attempt: the batch stays
    uncommitted (the loop treats this as an outage and gives up on the stop)."""


def config_of(settings: Settings) -> WebhookConfig:
    """The webhook client's configuration; a clear error when the sink cannot run."""
    if settings.webhook_secret is None:
        raise RuntimeError(
            "no webhook signing secret: set CRM_AUTOMATION_WEBHOOK_SECRET "
            "(receivers verify each request's HMAC-SHA256 signature with it)"
        )
    if not settings.webhook_allowed_hosts:
        raise RuntimeError(
            "no webhook hosts allowed: set CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS, "
            'e.g. ["hooks.example.com"]'
        )
    return WebhookConfig(
        allowed_hosts=tuple(settings.webhook_allowed_hosts),
        secret=settings.webhook_secret.get_secret_value().encode(),
        allow_private_addresses=settings.webhook_allow_private_addresses,
        ca_file=settings.webhook_ca_file,
        timeout=settings.webhook_timeout_seconds,
    )


def run(
    settings: Settings,
    metrics: SinkMetrics,
    stop: threading.Event,
    *,
    client: WebhookClient | None = None,
    clock: Clock | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Consume `automation.actions` until `stop` is set."""
    client = client or WebhookClient(config_of(settings))
    producer = Producer(kafka_clients.producer_config(settings))
    group = settings.group(GROUP)
    step = WebhookStep(
        client,
        producer,
        settings.topic(topics.EXECUTIONS),
        clock or SystemClock(),
        metrics,
        stop,
        concurrency=settings.webhook_concurrency,
        give_up_seconds=settings.webhook_give_up_seconds,
    )
    loop = sink_loop(
        step, settings, metrics, stop, producer, sink=SINK, group=group, readiness=readiness
    )
    logger.info("webhook sink started group=%s", group)
    try:
        loop.run()
    finally:
        producer.flush(10)


class WebhookStep:
    """Delivers a batch's webhook actions concurrently; other actions pass by."""

    retryable: tuple[type[BaseException], ...] = (Interrupted,)

    def __init__(
        self,
        client: WebhookClient,
        producer: Producer,
        executions_topic: str,
        clock: Clock,
        metrics: SinkMetrics,
        stop: threading.Event,
        *,
        concurrency: int = 8,
        give_up_seconds: float = 3600.0,
    ) -> None:
        self._client = client
        self._producer = producer
        self._executions_topic = executions_topic
        self._clock = clock
        self._metrics = metrics
        self._stop = stop
        self._give_up_seconds = give_up_seconds
        self._pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="webhook")
        self._done: set[str] = set()
        """Action ids of the batch in hand already delivered: a batch tried again is not
        sent to them again (a refused one is refused again, then dead-lettered once)."""

    def decode(self, value: bytes) -> Action:
        action: Action = _decode_action(value)
        return action

    def process(self, batch: Batch[Action], dead_letters: DeadLetters) -> None:
        todo = [
            (action, message)
            for action, message in zip(batch.records, batch.messages, strict=True)
            if isinstance(action.payload, CallWebhook) and action.action_id not in self._done
        ]
        if not todo:
            return
        started = time.perf_counter()
        outcomes = list(self._pool.map(lambda pair: self._deliver(pair[0]), todo))
        self._metrics.batch_seconds.labels(SINK).observe(time.perf_counter() - started)
        refused = [
            (action, message, refusal)
            for (action, message), refusal in zip(todo, outcomes, strict=True)
            if isinstance(refusal, Refused)
        ]
        if any(isinstance(o, Interrupted) for o in outcomes):
            raise Interrupted("stopped while webhooks waited to be retried")
        if refused:
            now = self._clock.now()
            kafka_clients.produce_and_confirm(
                self._producer,
                [
                    Outgoing(self._executions_topic, a.item_key.encode(), codec.encode(e))
                    for a, _m, r in refused
                    for e in (_failed(a, r, now),)
                ],
            )
            dead_letters.send([_letter(m, r) for _a, m, r in refused])
        self._observe([a for a, _m in todo], len(refused))
        self._done.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _deliver(self, action: Action) -> Refused | Interrupted | None:
        """One webhook until delivered (None), refused, or given up (a refusal too)."""
        backoff = Backoff(self._stop)
        deadline = time.monotonic() + self._give_up_seconds
        while True:
            try:
                self._client.send(action)
                self._done.add(action.action_id)
                return None
            except Refused as refusal:
                return refusal
            except Unavailable as exc:
                self._metrics.retries.labels(SINK).inc()
                wait = max(backoff.delay, exc.retry_after or 0.0)
                if time.monotonic() + wait > deadline:
                    return Refused(
                        "webhook_unavailable",
                        f"gave up after {self._give_up_seconds:.0f}s: {exc}",
                    )
                logger.warning(
                    "webhook action_id=%s not delivered, retrying in %.1fs: %s",
                    action.action_id,
                    wait,
                    exc,
                )
                if not backoff.wait(at_least=exc.retry_after or 0.0):
                    return Interrupted()

    def _observe(self, actions: list[Action], refused: int) -> None:
        self._metrics.writes.labels(SINK, "webhook", "delivered").inc(len(actions) - refused)
        if refused:
            self._metrics.writes.labels(SINK, "webhook", "refused").inc(refused)
        now = self._clock.now()
        for action in actions:
            start = action.due_at if action.mode == ActionMode.DELAYED and action.due_at else None
            start = start or action.occurred_at
            self._metrics.end_to_end.labels(SINK, action.mode.value).observe(
                max(0.0, (now - start).total_seconds())
            )


_decode_action = decode_as(Action)


def _failed(action: Action, refusal: Refused, now: datetime) -> Execution:
    return Execution(
        rule_id=action.rule_id,
        item_key=action.item_key,
        event_id=action.event_id,
        status=ExecutionStatus.FAILED,
        recorded_at=now,
        action_id=action.action_id,
        rule_version=action.rule_version,
        due_at=action.due_at,
        reason=refusal.reason,
    )


def _letter(message: ConsumedMessage, refusal: Refused) -> DeadLetter:
    return dead_letter_of(
        message,
        "WebhookRefused",
        refusal.reason,
        str(refusal),
        stage=STAGE_TASK_PUT,
        executing_class="sinks.webhook.delivery.WebhookClient",
    )
