"""All configuration, read once from CRM_AUTOMATION_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CRM_AUTOMATION_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
WireFormat = Literal["single-object", "schema-registry"]
EventLoop = Literal["uvloop", "asyncio"]


def http_url(value: str) -> str:
    """`value` when it is an absolute http or https URL with a host, else ValueError (the
    message leaves the value out: settings errors never print values)."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL, e.g. https://example.com/")
    return value


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("crm-automation"))


def _default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("crm-automation"))


class Settings(BaseSettings):
    """Frozen settings; load once in `main` and pass down. Nothing else reads os.environ."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    home: Path = Field(default_factory=_default_home)
    """All local state: Kafka jars cache, data dirs, logs, pid files."""

    # External services: when set, the local stack does not start that component.
    kafka_bootstrap_servers: str | None = None
    database_url: SecretStr | None = None
    caldav_url: str | None = None
    schema_registry_url: str | None = None
    """A Confluent-compatible schema registry API (e.g. Apicurio's `/apis/ccompat/v7`):
    read messages in the registry wire format by their schema id; with `wire_format`
    `schema-registry`, where our schemas are registered."""

    # The wire format of what our processes write (both are read on input, always).
    wire_format: WireFormat = "single-object"
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None

    # Kafka security (passed to confluent-kafka and to Faust alike).
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    """Used only with SASL_PLAINTEXT or SASL_SSL."""
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    """PEM file of the CA that signed the brokers' certificates (default: system CAs)."""

    # Ports of the embedded stack (0 = pick a free port on first start, then keep it).
    kafka_port: int = 0
    postgres_port: int = 0
    caldav_port: int = 0
    schema_registry_port: int = 0
    apicurio_version: str = "3.0.9"
    """The local schema registry (started by the stack when the wire format is
    `schema-registry` and no `schema_registry_url` is set)."""
    kafka_version: str = "4.1.1"
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Downloaded Kafka jars; outside `home` so every home (e.g. a test's) reuses them."""
    kafka_java_opts: str = "-Xms128m -Xmx512m"
    """JVM options of the local broker (heap kept modest: the machine is shared)."""

    # Topics.
    topic_prefix: str = ""
    partitions: int = 6
    replication_factor: int = 1
    topic_retention_days: int = 7
    timers_retention_days: int = 400
    """Timers may be pending for months: their topic keeps commands longer than that."""

    # Processes.
    metrics_host: str = "127.0.0.1"
    engine_metrics_port: int = 9401
    sink_postgres_metrics_port: int = 9402
    scheduler_metrics_port: int = 9403
    sink_calendar_metrics_port: int = 9404
    sink_webhook_metrics_port: int = 9405
    metrics_sockets: dict[int, int] = {}
    """Endpoint ports already bound by the parent process: port -> inherited file
    descriptor (JSON, e.g. `{"9401": 3}`). A processor whose port is listed serves on that
    socket instead of binding the port again, so a supervisor (or a test) can reserve a
    port once and hand it over without another process taking it in between."""
    batch_size: int = 500
    scheduler_poll_seconds: float = 1.0
    """Longest sleep of the fire loop; it wakes earlier for the next due or a new timer."""
    scheduler_fire_batch_size: int = 1000
    engine_batch_window_seconds: float = 0.05
    """How long the engine's agent waits for a batch to fill (up to `batch_size` events)
    before it takes what has arrived: longer windows make larger batches under a backlog
    (one delivery confirmation each), and add up to this much latency when events trickle."""
    engine_event_loop: EventLoop = "uvloop"
    """The engine's asyncio event loop: uvloop (libuv; less of every event spent in the
    loop's own scheduling and socket code) or Python's own."""
    engine_stall_seconds: float = 60.0
    """Liveness watchdog: an engine whose input lag stays above 0 while it neither
    finishes a batch nor commits an offset for this long logs its partition state and
    exits with status 70 for its supervisor to restart it (0: no watchdog)."""
    log_json: bool = False
    """One JSON object per log line (time, level, logger, message, exception)."""
    log_level: str = "INFO"
    consumer_lag_interval_seconds: float = 5.0
    """How often each consuming process refreshes crm_automation_consumer_lag."""

    # Calendar sink (CalDAV). Without a username each request authenticates as the
    # calendar's owner (the user or room id), as Radicale keys collections by user.
    caldav_username: str | None = None
    caldav_password: SecretStr | None = None
    caldav_timeout_seconds: float = 10.0
    caldav_concurrency: int = 8
    """Items written in parallel per batch (one item's actions stay in order)."""
    calendar_user_domain: str = "users.invalid"
    """Attendee addresses of CRM users: mailto:<user id>@<this domain>."""
    calendar_room_domain: str = "rooms.invalid"

    # Webhook sink. Outbound requests go only to allowlisted hosts, never to private,
    # loopback or link-local addresses unless allowed, and never follow redirects.
    webhook_allowed_hosts: list[str] = []
    """Hosts webhooks may be sent to (JSON list); `*.example.com` allows its subdomains.
    Empty: `crm-automation run` starts no webhook sink."""
    webhook_secret: SecretStr | None = None
    """Key of the HMAC-SHA256 signature of every request (required by the webhook sink)."""
    webhook_allow_private_addresses: bool = False
    """Allow hosts that resolve to private, loopback or link-local addresses (internal
    receivers, tests). Off by default: server-side request forgery is the risk."""
    webhook_ca_file: Path | None = None
    """PEM bundle of CAs to trust for receivers (default: the system's CAs)."""
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 8
    """Requests in flight per batch."""
    webhook_give_up_seconds: float = 3600.0
    """How long one webhook is retried (5xx, 429, network errors) before it is
    dead-lettered with reason `webhook_unavailable` (replay it with `dlq replay`)."""

    # Operations.
    docs_base_url: str | None = None
    """Where this repository's files are published (http or https), e.g.
    `https://github.com/<org>/crm-automation/blob/main/`: `crm-automation alerts rules`
    makes each alert's runbook link (`docs/operations.md#...`) absolute against it."""

    @field_validator("docs_base_url")
    @classmethod
    def _docs_base_url_is_http(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """A consumer group's name: prefixed like the topics, so prefixed deployments
        (and parallel test runs) sharing one cluster never share a group."""
        return f"{self.topic_prefix}{name}"
