"""The local stack: Kafka, Postgres and Radicale started (or found running) from Settings."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from crm_automation.stack.kafka import KafkaBroker, kafka_answers
from crm_automation.stack.postgres import PostgresServer, postgres_answers
from crm_automation.stack.processes import PortBook, Progress, StackError
from crm_automation.stack.radicale import RadicaleServer, caldav_answers
from crm_automation.stack.registry import RegistryServer, registry_answers
from runtime.settings import Settings

logger = logging.getLogger(__name__)

Outcome = Literal["started", "running", "external"]


class LocalServer(Protocol):
    """A server the stack runs itself: started idempotently, checked, stopped."""

    name: str

    def pid(self) -> int | None:
        """The server's pid if it runs (a stale pid file counts as not running)."""

    def is_up(self) -> bool:
        """Whether the server answers its protocol (not just whether the process exists)."""

    def start(self, progress: Progress = ...) -> None:
        """Start if not running and wait until it answers; raise StackError otherwise."""

    def stop(self) -> None:
        """Stop if running and wait until the process is gone."""


@dataclass(frozen=True)
class ComponentStart:
    """What `Stack.up` did for one component, and how long it took."""

    name: str
    address: str
    outcome: Outcome
    seconds: float


@dataclass(frozen=True)
class StackStatus:
    """Where each service is and whether it answers right now."""

    kafka_bootstrap: str
    database_url: str
    caldav_url: str
    kafka_up: bool
    postgres_up: bool
    caldav_up: bool
    kafka_pid: int | None = None
    postgres_pid: int | None = None
    caldav_pid: int | None = None
    external: tuple[str, ...] = ()
    """Components given by configuration (not run by this stack)."""
    schema_registry_url: str | None = None
    """Only with the schema-registry wire format (or a configured registry)."""
    registry_up: bool | None = None
    registry_pid: int | None = None

    @property
    def all_up(self) -> bool:
        return (
            self.kafka_up and self.postgres_up and self.caldav_up and self.registry_up is not False
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Stack:
    """The three services, and a schema registry with the schema-registry wire format; a
    configured URL replaces the local server of that service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ports = PortBook(settings.home / "stack" / "ports.json")
        self.kafka = None if settings.kafka_bootstrap_servers else KafkaBroker(settings, ports)
        self.postgres = None if settings.database_url else PostgresServer(settings, ports)
        self.caldav = None if settings.caldav_url else RadicaleServer(settings, ports)
        self.registry = (
            RegistryServer(settings, ports)
            if settings.wire_format == "schema-registry" and not settings.schema_registry_url
            else None
        )

    @property
    def local_servers(self) -> list[LocalServer]:
        servers: list[LocalServer | None] = [self.postgres, self.caldav, self.registry, self.kafka]
        return [s for s in servers if s is not None]

    @property
    def kafka_bootstrap(self) -> str:
        if self.kafka is None:
            return str(self.settings.kafka_bootstrap_servers)
        return self.kafka.address

    @property
    def database_url(self) -> str:
        """The usable URL (with its password when configured externally: keep it out of logs)."""
        if self.postgres is None:
            assert self.settings.database_url is not None  # noqa: S101 - set when postgres is None
            return self.settings.database_url.get_secret_value()
        return self.postgres.url

    @property
    def caldav_url(self) -> str:
        if self.caldav is None:
            return str(self.settings.caldav_url)
        return self.caldav.url

    @property
    def schema_registry_url(self) -> str | None:
        if self.registry is None:
            return self.settings.schema_registry_url
        return self.registry.url

    def resolved_settings(self) -> Settings:
        """The settings with every service's address filled in, for clients of the stack."""
        return self.settings.model_copy(
            update={
                "kafka_bootstrap_servers": self.kafka_bootstrap,
                "database_url": SecretStr(self.database_url),
                "caldav_url": self.caldav_url,
                "schema_registry_url": self.schema_registry_url,
            }
        )

    def up(self, progress: Progress = lambda _: None) -> list[ComponentStart]:
        """Start every local server not running yet, in parallel; reuse running ones.

        Raises StackError naming every server that failed; the others stay up.
        """
        reports = [ComponentStart(name, address, "external", 0.0) for name, address in (
            ("kafka", None if self.kafka else self.kafka_bootstrap),
            ("postgres", None if self.postgres else mask_password(self.database_url)),
            ("caldav", None if self.caldav else self.caldav_url),
            ("registry", None if self.registry else self.schema_registry_url),
        ) if address is not None]  # fmt: skip
        servers = self.local_servers
        with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
            futures = {s.name: pool.submit(self._start, s, progress) for s in servers}
        failures = []
        for name, future in futures.items():
            error = future.exception()
            if error is None:
                reports.append(future.result())
            else:
                failures.append(f"{name}: {error}")
        if failures:
            raise StackError("the stack did not come up:\n" + "\n".join(failures))
        order = {"kafka": 0, "postgres": 1, "caldav": 2, "registry": 3}
        return sorted(reports, key=lambda r: order[r.name])

    def _start(self, server: LocalServer, progress: Progress) -> ComponentStart:
        started = time.monotonic()
        outcome: Outcome = "running" if server.pid() is not None else "started"
        server.start(progress)
        seconds = time.monotonic() - started
        logger.info("stack component=%s outcome=%s seconds=%.1f", server.name, outcome, seconds)
        return ComponentStart(server.name, self._address(server.name), outcome, seconds)

    def _address(self, name: str) -> str:
        return {
            "kafka": self.kafka_bootstrap,
            "postgres": self.database_url,
            "caldav": self.caldav_url,
            "registry": str(self.schema_registry_url),
        }[name]

    def down(self) -> list[str]:
        """Stop every local server that runs; returns the names of those stopped."""
        stopped = []
        for server in reversed(self.local_servers):
            if server.pid() is not None:
                server.stop()
                stopped.append(server.name)
        return stopped

    def status(self) -> StackStatus:
        """Real checks: an AdminClient metadata request, a Postgres query, an HTTP request."""
        return StackStatus(
            kafka_bootstrap=self.kafka_bootstrap,
            database_url=self.database_url if self.postgres else mask_password(self.database_url),
            caldav_url=self.caldav_url,
            kafka_up=self.kafka.is_up() if self.kafka else kafka_answers(self.kafka_bootstrap),
            postgres_up=(
                self.postgres.is_up() if self.postgres else postgres_answers(self.database_url)
            ),
            caldav_up=self.caldav.is_up() if self.caldav else caldav_answers(self.caldav_url),
            kafka_pid=self.kafka.pid() if self.kafka else None,
            postgres_pid=self.postgres.pid() if self.postgres else None,
            caldav_pid=self.caldav.pid() if self.caldav else None,
            external=tuple(
                name
                for name, server in (
                    ("kafka", self.kafka),
                    ("postgres", self.postgres),
                    ("caldav", self.caldav),
                )
                if server is None
            )
            + (("registry",) if self.registry is None and self.schema_registry_url else ()),
            schema_registry_url=self.schema_registry_url,
            registry_up=self._registry_up(),
            registry_pid=self.registry.pid() if self.registry else None,
        )

    def _registry_up(self) -> bool | None:
        if self.registry is not None:
            return self.registry.is_up()
        if self.schema_registry_url:
            return registry_answers(self.schema_registry_url)
        return None


def mask_password(url: str) -> str:
    """The URL with any password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
