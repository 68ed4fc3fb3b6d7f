"""A single-node Apache Kafka (KRaft, broker and controller in one JVM) under the stack home."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka.admin import AdminClient

from crm_automation.stack import kafka_jars
from crm_automation.stack.processes import (
    PidFile,
    PortBook,
    Progress,
    StackError,
    log_tail,
    poll_until,
    port_open,
    spawn,
    terminate,
)
from runtime.settings import Settings

logger = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

# Every replication factor 1: with the defaults (3) a single node cannot host the offsets
# or transaction topics and groups/transactions fail with "coordinator not available".
# Internal topics get 10 partitions, not 50, so the first consumer group starts quickly.
_BROKER_DEFAULTS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "10",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
}

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
"""


def cluster_id() -> str:
    """A new KRaft cluster id, shaped like Kafka's `Uuid.randomUuid().toString()`."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def admin_client(bootstrap: str) -> AdminClient:
    """An AdminClient whose librdkafka connection errors stay out of our logs."""
    quiet = logging.getLogger("crm_automation.stack.librdkafka")
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": quiet}
    return AdminClient(config)


def kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """Whether a broker at `bootstrap` answers a metadata request."""
    try:
        admin_client(bootstrap).list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not up"
        return False
    return True


class KafkaBroker:
    """The local broker: formats its storage once, runs detached, remembers its ports.

    `extra_properties` are written last into server.properties (e.g. another listener with
    SASL_SSL, keeping PLAINTEXT for inter-broker and controller traffic); `format_args`
    are appended to the storage format command (e.g. `--add-scram ...` credentials).
    """

    name = "kafka"

    def __init__(
        self,
        settings: Settings,
        ports: PortBook,
        *,
        extra_properties: Mapping[str, str] | None = None,
        format_args: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.ports = ports
        self.extra_properties = dict(extra_properties or {})
        self.format_args = list(format_args)
        self.dir = settings.home / "kafka"
        self.data_dir = self.dir / "data"
        self.properties = self.dir / "server.properties"
        self.log4j = self.dir / "log4j2.properties"
        self.server_log = settings.home / "logs" / "kafka-server.log"
        self.stdout_log = settings.home / "logs" / "kafka.out"
        # Held so the Popen is not garbage-collected (a ResourceWarning) while it runs.
        self._process: subprocess.Popen[bytes] | None = None
        self.pid_file = PidFile(settings.home / "run" / "kafka.pid", marker=str(self.properties))

    @property
    def port(self) -> int:
        return self.ports.port("kafka", self.settings.kafka_port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return self.pid_file.running_pid()

    def is_up(self) -> bool:
        return port_open("127.0.0.1", self.port) and kafka_answers(self.address)

    def start(self, progress: Progress = lambda _: None) -> None:
        """Start the broker (fetching jars and formatting storage if needed); wait for it."""
        if self.pid() is not None:
            # Running already (perhaps still booting, started by another process).
            if not poll_until(self.is_up, timeout=START_TIMEOUT, interval=0.3):
                raise StackError(f"Kafka runs but does not answer:\n{self._log_tails()}")
            return
        java = kafka_jars.java_executable()
        libs = kafka_jars.kafka_libs(self.settings.cache_dir, self.settings.kafka_version, progress)
        self._write_config()
        classpath = f"{libs}/*"
        if not (self.data_dir / "meta.properties").exists():
            progress("formatting Kafka storage")
            self._format(java, classpath)
        if port_open("127.0.0.1", self.port):
            raise StackError(f"port {self.port} is taken by another process: cannot start Kafka")
        progress(f"starting Kafka on {self.address}")
        argv = [
            java,
            *self.settings.kafka_java_opts.split(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j}",
            f"-Dkafka.logs.dir={self.server_log.parent}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties),
        ]
        process = self._process = spawn(argv, self.stdout_log, cwd=self.dir)
        self.pid_file.write(process.pid)
        logger.info("kafka started pid=%s port=%s", process.pid, self.port)

        def died() -> str | None:
            if process.poll() is None:
                return None
            self.pid_file.path.unlink(missing_ok=True)
            return f"Kafka exited with code {process.returncode}:\n{self._log_tails()}"

        if not poll_until(self.is_up, timeout=START_TIMEOUT, interval=0.3, abort=died):
            self.stop()
            raise StackError(
                f"Kafka did not answer within {START_TIMEOUT:.0f}s:\n{self._log_tails()}"
            )

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.pid_file.marker, STOP_TIMEOUT)
            logger.info("kafka stopped pid=%s", pid)
        self.pid_file.path.unlink(missing_ok=True)
        if self._process is not None:
            self._process.wait(timeout=5)  # reap our own child: gone is gone
            self._process = None

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server_log.parent.mkdir(parents=True, exist_ok=True)
        controller_port = self.ports.port("kafka_controller")
        props = {
            **_BROKER_DEFAULTS,
            # A static voter set: the quorum is read from here on every start rather than
            # frozen into the formatted storage.
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://{self.address},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.address}",
            "log.dirs": str(self.data_dir),
            **self.extra_properties,
        }
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log4j.write_text(_LOG4J2.format(log=self.server_log))

    def _format(self, java: str, classpath: str) -> None:
        argv = [
            java,
            f"-Dlog4j2.configurationFile={self.log4j}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id(),
            "-c",
            str(self.properties),
            *self.format_args,
        ]
        result = subprocess.run(  # noqa: S603
            argv, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}".strip()
            )

    def _log_tails(self) -> str:
        return (
            f"--- {self.stdout_log}\n{log_tail(self.stdout_log, 10)}\n"
            f"--- {self.server_log}\n{log_tail(self.server_log, 30)}"
        )
