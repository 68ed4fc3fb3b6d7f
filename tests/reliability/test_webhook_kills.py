"""The webhook sink SIGKILLed three times under load, against an HTTPS receiver that
fails, throttles and delays some requests: every webhook applied, none applied twice."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from runtime import codec, kafka_clients, topics
from runtime.settings import Settings
from tests.helpers import wait_for
from tests.integration.support import start_cli, stop_process
from tests.integration.test_webhook_sink import webhook_action
from tests.integration.webhook_receiver import SECRET, Receiver
from tests.reliability.harness import Row, percentile, random_moments, record, sleep_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

RATE = 100
SECONDS = 20
MODES = ["ok"] * 17 + ["fail2", "throttle", "slow"]


def test_the_webhook_sink_killed_three_times_under_load_loses_and_applies_twice_nothing(
    stack: Any, settings: Settings, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    receiver = Receiver(tmp_path)
    env = {
        "CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS": '["localhost"]',
        "CRM_AUTOMATION_WEBHOOK_SECRET": SECRET,
        "CRM_AUTOMATION_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "CRM_AUTOMATION_WEBHOOK_CA_FILE": str(receiver.ca_file),
        "CRM_AUTOMATION_SINK_WEBHOOK_METRICS_PORT": "0",
    }
    sent: list[str] = []
    sent_at: dict[str, float] = {}

    def load() -> None:
        producer = Producer(kafka_clients.producer_config(settings))
        begin = time.monotonic()
        for n in range(RATE * SECONDS):
            sleep_until(begin + n / RATE)
            action = webhook_action(receiver.url(), rng_modes.choice(MODES), item=f"DEAL:{n % 50}")
            producer.produce(
                settings.topic(topics.ACTIONS),
                key=action.item_key.encode(),
                value=codec.encode(action),
            )
            producer.poll(0)
            sent.append(action.action_id)
            sent_at[action.action_id] = time.time()
        kafka_clients.flush_or_raise(producer)

    rng_modes = random.Random(seed + 1)
    sink = start_cli(settings, tmp_path, "sink", "webhook", **env)
    loader = threading.Thread(target=load)
    begin = time.monotonic()
    loader.start()
    try:
        for moment in random_moments(rng, 3, begin + 2, begin + SECONDS - 2):
            sleep_until(moment)
            assert sink.poll() is None, f"sink-webhook exited with {sink.returncode}"
            sink.send_signal(signal.SIGKILL)
            sink.wait(timeout=30)
            sink = start_cli(settings, tmp_path, "sink", "webhook", **env)
        loader.join(120)
        ended = time.time()
        wait_for(
            lambda: set(sent) <= set(receiver.applied),
            timeout=240,
            what="every webhook applied by the receiver",
        )
        recovery = time.time() - ended
    finally:
        code = stop_process(sink)
        receiver.close()

    # The receiver applies a key once: a webhook applied twice would come with a key of
    # its own, one that was never sent.
    applied_twice = len(set(receiver.applied) - set(sent))
    latencies = [receiver.applied_at[a] - sent_at[a] for a in sent if a in receiver.applied_at]
    redelivered = sum(count - 1 for count in receiver.requests.values() if count > 1)
    lost = len(set(sent) - set(receiver.applied))
    row = Row(
        scenario=f"SIGKILL sink-webhook x3 (seed {seed})",
        events_in=len(sent),
        expected=len(sent),
        found=len(set(sent) & set(receiver.applied)),
        duplicates=applied_twice,
        lost=lost,
        dlq=0,
        recovery_s=recovery,
        p99_latency_s=percentile(latencies, 0.99),
        notes=f"requests beyond the first per key (retries and redeliveries): {redelivered}",
    )
    record(row)
    assert code == 0
    assert (row.lost, row.duplicates) == (0, 0), row.notes
    assert receiver.bad_signatures == 0
