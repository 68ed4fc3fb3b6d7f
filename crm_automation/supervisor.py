"""The pipeline's processors as child processes of `crm-automation run`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from runtime.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processor:
    name: str
    args: tuple[str, ...]
    metrics_port: int


def processors(settings: Settings) -> list[Processor]:
    """The processors of `crm-automation run`; the webhook sink only once hosts are allowed."""
    started = [
        Processor("engine", ("engine",), settings.engine_metrics_port),
        Processor("scheduler", ("scheduler",), settings.scheduler_metrics_port),
        Processor("sink-postgres", ("sink", "postgres"), settings.sink_postgres_metrics_port),
        Processor("sink-calendar", ("sink", "calendar"), settings.sink_calendar_metrics_port),
    ]
    if settings.webhook_allowed_hosts:
        started.append(
            Processor("sink-webhook", ("sink", "webhook"), settings.sink_webhook_metrics_port)
        )
    return started


def child_environment(settings: Settings) -> dict[str, str]:
    """The resolved addresses, so every child uses the same services as its parent."""
    env = dict(os.environ)  # noqa: S105 - passes the parent's configuration on
    env["CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers or ""
    env["CRM_AUTOMATION_CALDAV_URL"] = settings.caldav_url or ""
    if settings.schema_registry_url:
        env["CRM_AUTOMATION_SCHEMA_REGISTRY_URL"] = settings.schema_registry_url
    if settings.database_url is not None:
        env["CRM_AUTOMATION_DATABASE_URL"] = settings.database_url.get_secret_value()
    env["CRM_AUTOMATION_HOME"] = str(settings.home)
    return env


def handed_over(settings: Settings, port: int) -> tuple[int, ...]:
    """The endpoint socket this process was handed for `port`, to hand on to its child."""
    fd = settings.metrics_sockets.get(port)
    return () if fd is None else (fd,)


class Supervisor:
    """Starts each processor with its log under home/logs; stops them all with SIGTERM."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, processor: Processor) -> Path:
        log_dir = self._settings.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{processor.name}.log"
        executable = str(Path(sys.executable).with_name("crm-automation"))
        with open(log_path, "ab") as log:
            self.running[processor.name] = subprocess.Popen(  # noqa: S603 - our own CLI
                [executable, *processor.args],
                env=child_environment(self._settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches run, which stops children in order
                pass_fds=handed_over(self._settings, processor.metrics_port),
            )
        logger.debug(
            "started processor=%s pid=%s", processor.name, self.running[processor.name].pid
        )
        return log_path

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.running.items() if p.poll() is not None}

    def stop(self, timeout: float = 30.0) -> dict[str, int]:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.running.items():
            try:
                codes[name] = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes
