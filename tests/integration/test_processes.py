"""The four processors as users deploy them: readiness, SIGTERM, JSON logs, every metric moving."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from crm_automation.commands.run import EXAMPLE_RULES
from runtime import kafka_clients, topics
from runtime.settings import Settings
from tests.helpers import wait_for
from tests.integration.support import run_cli, start_cli, stop_process

pytestmark = pytest.mark.integration

PROCESSORS = {
    "engine": (("engine",), "engine_metrics_port"),
    "scheduler": (("scheduler",), "scheduler_metrics_port"),
    "sink-postgres": (("sink", "postgres"), "sink_postgres_metrics_port"),
    "sink-calendar": (("sink", "calendar"), "sink_calendar_metrics_port"),
}

# The metrics of docs/operations.md ("Metrics"), as the sample each process exposes: a counter's
# `_total`, a histogram's `_count` (observations), a gauge's value.
EXPECTED = {
    "engine": [
        "crm_automation_events_total",
        "crm_automation_rule_executions_total",
        "crm_automation_actions_total",
        "crm_automation_timer_commands_total",
        "crm_automation_dlq_messages_total",
        "crm_automation_engine_batch_duration_seconds_count",
        "crm_automation_engine_confirm_duration_seconds_count",
        "crm_automation_rules_loaded",
        "crm_automation_consumer_lag",
    ],
    "scheduler": [
        "crm_automation_timers_pending",
        "crm_automation_timers_scheduled_total",
        "crm_automation_timers_cancelled_total",
        "crm_automation_timers_fired_total",
        "crm_automation_timer_firing_lag_seconds_count",
        "crm_automation_scheduler_batch_duration_seconds_count",
        "crm_automation_consumer_lag",
    ],
    "sink-postgres": [
        "crm_automation_sink_writes_total",
        "crm_automation_sink_batch_duration_seconds_count",
        "crm_automation_end_to_end_latency_seconds_count",
        "crm_automation_consumer_lag",
    ],
    "sink-calendar": [
        "crm_automation_sink_writes_total",
        "crm_automation_sink_batch_duration_seconds_count",
        "crm_automation_end_to_end_latency_seconds_count",
        "crm_automation_consumer_lag",
    ],
}
# Every process: its version (1 per running process) and the standard process metrics.
for _samples in EXPECTED.values():
    _samples += ["crm_automation_build_info", "process_resident_memory_bytes"]
# Registered in every process of that kind, but only a fault makes them move.
REGISTERED_ONLY = {
    "scheduler": ["crm_automation_scheduler_retries", "crm_automation_dlq_messages"],
    "sink-postgres": ["crm_automation_sink_retries", "crm_automation_dlq_messages"],
    "sink-calendar": ["crm_automation_sink_retries", "crm_automation_dlq_messages"],
}


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:  # noqa: S310 - local endpoint
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def port_of(s: Settings, name: str) -> int:
    return int(getattr(s, PROCESSORS[name][1]))


def start(s: Settings, tmp_path: Path, name: str, **extra: str) -> subprocess.Popen[bytes]:
    return start_cli(s, tmp_path, *PROCESSORS[name][0], CRM_AUTOMATION_LOG_JSON="true", **extra)


def wait_ready(s: Settings, name: str, process: subprocess.Popen[bytes]) -> None:
    def ready() -> bool:
        assert process.poll() is None, f"{name} exited with {process.returncode}"
        return get(port_of(s, name), "/readyz")[0] == 200

    wait_for(ready, timeout=90, interval=0.2, what=f"{name} /readyz 200")


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            addresses.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return addresses


def log_lines(tmp_path: Path) -> list[str]:
    return [line for log in tmp_path.glob("*.log") for line in log.read_text().splitlines()]


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_a_processor_run_alone_becomes_ready_and_exits_0_on_sigterm_with_json_logs(
    settings: Settings, tmp_path: Path, name: str
) -> None:
    process = start(settings, tmp_path, name)
    try:
        status, reason = get(port_of(settings, name), "/readyz")
        wait_ready(settings, name, process)
        assert get(port_of(settings, name), "/healthz") == (200, "ok\n")
        # The endpoint listens on loopback only unless CRM_AUTOMATION_METRICS_HOST says so.
        assert listening_addresses(port_of(settings, name)) == {"127.0.0.1"}
    finally:
        code = stop_process(process)  # waits at most 30 s

    assert status in (0, 200, 503), reason  # 0: not listening yet
    assert code == 0, f"{name} exited with {code} on SIGTERM"
    lines = log_lines(tmp_path)
    entries = [json.loads(line) for line in lines]  # every line one JSON object
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any("signal=15 received" in e["message"] or "Signal received: 15" in e["message"]
               for e in entries)  # fmt: skip


# --- every documented metric moves while work happens -------------------------------------

EXTRA_RULE = """
  # Test only: a timer due a few seconds after the event, so the scheduler fires it.
  - id: follow-up-lead
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 15s}
    action: {type: create_lead, title: "Follow up {{ item_id }}"}
"""

# Personal data of the test's contacts: none of it may appear in any log line.
CONTACT = {
    "id": "p-91",
    "name": "Quirinus",
    "last_name": "Zapfenstreich",
    "email": "quirinus.zapfenstreich@example.org",
    "phone": "+49 30 55501234",
}


def stage_change(event_id: str, item_id: str, stage: str, responsible: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "entity_type": "DEAL",
        "item_id": item_id,
        "pipeline_id": "sales",
        "stage_id": stage,
        "previous_stage_id": "NEW",
        "item": {
            "title": f"Maintenance {item_id}",
            "responsible_id": responsible,
            "amount": "12000.00",
            "currency": "EUR",
            "company": {"id": "c-1", "title": "Beispiel GmbH"},
            "contacts": [CONTACT],
            "fields": {"UF_CONTRACT_NO": "MV-17"},
        },
    }


class Scraper:
    """Scrapes every process's /metrics in the background; keeps each sample's history."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.history: dict[tuple[str, str], list[float]] = {}
        self.families: dict[str, set[str]] = {name: set() for name in ports}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, port in self.ports.items():
                status, text = get(port, "/metrics")
                if status == 200:
                    self._record(name, text)

    def _record(self, name: str, text: str) -> None:
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            self.families[name].add(family.name)
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        for sample_name, total in totals.items():
            self.history.setdefault((name, sample_name), []).append(total)

    def peak(self, name: str, sample: str) -> float:
        return max(self.history.get((name, sample), [0.0]))

    def last(self, name: str, sample: str) -> float | None:
        values = self.history.get((name, sample))
        return values[-1] if values else None


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    running: dict[str, subprocess.Popen[bytes]] = {}
    yield running
    codes = {name: stop_process(process) for name, process in running.items()}
    assert codes == dict.fromkeys(running, 0), "a processor did not exit 0 on SIGTERM"


def test_every_documented_metric_moves_and_no_log_line_holds_personal_data(
    settings: Settings, tmp_path: Path, processes: dict[str, subprocess.Popen[bytes]]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(EXAMPLE_RULES.read_text() + EXTRA_RULE)
    applied = run_cli(settings, tmp_path, "rules", "apply", str(rules))
    assert applied.returncode == 0, applied.stderr
    user = f"u-{uuid.uuid4().hex[:8]}"  # the calendar sink writes into this user's calendar
    events = [
        stage_change("evt-1", "5001", "WON", user),  # copy + renewal + follow-up timers
        stage_change("evt-2", "5002", "APPROVAL", user),  # call planned in the calendar
        stage_change("evt-3", "5003", "WON", user),
        stage_change("evt-4", "5003", "LOST", user),  # cancels 5003's follow-up timer
    ]
    produced = run_cli(
        settings,
        tmp_path,
        "events",
        "produce",
        "-",
        input_text="".join(json.dumps(e) + "\n" for e in events),
    )
    assert produced.returncode == 0, produced.stderr
    garbage = Producer(kafka_clients.producer_config(settings))
    garbage.produce(settings.topic(topics.STAGE_CHANGES), key=b"DEAL:666", value=b"\xc3\x01no")
    kafka_clients.flush_or_raise(garbage)

    lag_interval = {"CRM_AUTOMATION_CONSUMER_LAG_INTERVAL_SECONDS": "2"}
    ports = {name: port_of(settings, name) for name in PROCESSORS}
    with Scraper(ports) as scraper:
        # The engine first, alone, so the others start with a backlog (lag > 0) to work off.
        processes["engine"] = start(settings, tmp_path, "engine", **lag_interval)
        wait_for(
            lambda: scraper.peak("engine", "crm_automation_events_total") >= 5,
            timeout=90,
            what="the engine consumed the 4 events and the garbage",
        )
        for name in ("scheduler", "sink-postgres", "sink-calendar"):
            processes[name] = start(settings, tmp_path, name, **lag_interval)
        wait_for(
            lambda: (
                scraper.peak("scheduler", "crm_automation_timers_fired_total") >= 1
                and scraper.peak("scheduler", "crm_automation_timers_cancelled_total") >= 1
            ),
            timeout=90,
            what="the follow-up timer fired and the other one cancelled",
        )
        wait_for(
            lambda: (
                all(scraper.last(n, "crm_automation_consumer_lag") == 0 for n in PROCESSORS)
                and scraper.peak("sink-postgres", "crm_automation_sink_writes_total") >= 5
                # The renewal lead waits 180 days; the gauge is refreshed every 10 s.
                and scraper.peak("scheduler", "crm_automation_timers_pending") >= 1
            ),
            timeout=60,
            what="every consumer caught up, the fired lead written, the renewal pending",
        )

    not_moving = [
        f"{name}: {sample}"
        for name, samples in EXPECTED.items()
        for sample in samples
        if scraper.peak(name, sample) <= 0
    ]
    assert not_moving == []
    missing = [
        f"{name}: {family}"
        for name, families in REGISTERED_ONLY.items()
        for family in families
        if family not in scraper.families[name]
    ]
    assert missing == []

    for process in processes.values():
        assert stop_process(process) == 0
    lines = log_lines(tmp_path) + [applied.stdout, applied.stderr, produced.stdout, produced.stderr]
    personal = [v for k, v in CONTACT.items() if k != "id"]
    leaks = [line for line in lines if any(value in line for value in personal)]
    assert leaks == []
    assert len(lines) > 20  # the processes did log
