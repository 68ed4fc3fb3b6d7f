"""The schema registry wire format: our schemas registered, registry ids read.

With `CRM_AUTOMATION_WIRE_FORMAT=schema-registry`, every process registers the schema of
each record it may write under the topic's subject (`<topic>-value`; `<topic>-<record
fullname>` on `automation.rules`, which carries two records) with BACKWARD compatibility,
and the codec writes `00` + the schema's id. With a registry URL set, every process reads
registry-framed messages whatever it writes. The API is Confluent's (Apicurio serves it
at `/apis/ccompat/v7`); ids are content ids, the same for one schema under every subject.
"""

from __future__ import annotations

import logging
import threading

import httpx

from runtime import codec, topics
from runtime.codec.framing import NAMESPACE, history_text
from runtime.retry import retry
from runtime.settings import Settings

logger = logging.getLogger(__name__)

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_LOOKUP_GIVE_UP_SECONDS = 30.0

RECORDS_BY_TOPIC: dict[str, tuple[str, ...]] = {
    topics.STAGE_CHANGES: ("StageChanged",),
    topics.RULES: ("Rule", "Pipeline"),
    topics.TIMERS: ("TimerCommand",),
    topics.ACTIONS: ("Action",),
    topics.EXECUTIONS: ("Execution",),
}
"""The records our processes write to each topic (the DLQ holds copies of others' bytes)."""


class SchemaRegistryError(RuntimeError):
    """The registry refused a schema or did not answer; says which URL and why."""


class RegistryClient:
    """The three calls of the Confluent-compatible API the codec needs."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        if not settings.schema_registry_url:
            raise SchemaRegistryError(
                "the schema-registry wire format needs CRM_AUTOMATION_SCHEMA_REGISTRY_URL"
            )
        self.url = settings.schema_registry_url.rstrip("/")
        auth = None
        if settings.schema_registry_username:
            password = settings.schema_registry_password
            auth = httpx.BasicAuth(
                settings.schema_registry_username,
                password.get_secret_value() if password else "",
            )
        self._http = httpx.Client(
            base_url=self.url, auth=auth, timeout=timeout, headers={"Accept": _CONTENT_TYPE}
        )

    def register(self, subject: str, schema: str) -> int:
        """The id of `schema` under `subject` (registered now if new; 409: incompatible)."""
        answer = self._call(
            "POST", f"/subjects/{subject}/versions", {"schemaType": "AVRO", "schema": schema}
        )
        return int(answer.json()["id"])

    def require_backward_compatibility(self, subject: str) -> None:
        self._call("PUT", f"/config/{subject}", {"compatibility": "BACKWARD"})

    def schema_text(self, schema_id: int) -> str | None:
        """The schema registered under `schema_id`; None when the registry has none."""
        response = self._http.get(f"/schemas/ids/{schema_id}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        response.raise_for_status()
        return str(response.json()["schema"])

    def _call(self, method: str, path: str, body: dict[str, str]) -> httpx.Response:
        try:
            response = self._http.request(
                method, path, json=body, headers={"Content-Type": _CONTENT_TYPE}
            )
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(f"schema registry {self.url}: {exc}") from exc
        if response.is_error:
            raise SchemaRegistryError(
                f"schema registry {self.url} answered {response.status_code} to"
                f" {method} {path}: {response.text[:300]}"
            )
        return response

    def close(self) -> None:
        self._http.close()


def register_schemas(client: RegistryClient, settings: Settings) -> dict[str, int]:
    """Register every record under each topic it is written to; each record's id."""
    ids: dict[str, int] = {}
    writers = codec.writer_schemas()
    for contract, records in RECORDS_BY_TOPIC.items():
        topic = settings.topic(contract)
        for record in records:
            # TopicNameStrategy; TopicRecordNameStrategy on a topic of several records.
            name = f"{topic}-value" if len(records) == 1 else f"{topic}-{NAMESPACE}.{record}"
            client.require_backward_compatibility(name)
            schema_id = client.register(name, history_text(writers[record]))
            if ids.setdefault(record, schema_id) != schema_id:
                raise SchemaRegistryError(
                    f"schema registry {client.url} gave {record} two ids ({ids[record]},"
                    f" {schema_id}): it must return content ids, the same under every subject"
                )
    logger.info("schemas registered records=%d url=%s", len(ids), client.url)
    return ids


def configure(settings: Settings) -> None:
    """Set the codec up for this process: read registry ids when a registry is configured;
    register our schemas and write the registry wire format when that format is chosen.
    Call once at start, before anything is encoded or decoded."""
    if not settings.schema_registry_url:
        if settings.wire_format == "schema-registry":
            raise SchemaRegistryError(
                "the schema-registry wire format needs CRM_AUTOMATION_SCHEMA_REGISTRY_URL"
            )
        return
    client = RegistryClient(settings)
    codec.read_registry_schemas_with(_patient_lookup(client))
    if settings.wire_format == "schema-registry":
        codec.write_registry_ids(register_schemas(client, settings))


def _patient_lookup(client: RegistryClient) -> codec.RegistryLookup:
    """`client.schema_text`, retried through a registry outage for a while; then the
    error propagates and the process stops before its offsets pass the message (it is
    read again after the restart: nothing is lost)."""

    def lookup(schema_id: int) -> str | None:
        found: list[str | None] = []
        stop = threading.Event()
        timer = threading.Timer(_LOOKUP_GIVE_UP_SECONDS, stop.set)
        timer.start()

        def failed(exc: BaseException, delay: float) -> None:
            logger.warning(
                "schema registry lookup failed id=%d, retrying in %.1fs: %s", schema_id, delay, exc
            )

        try:
            if not retry(
                lambda: found.append(client.schema_text(schema_id)),
                (httpx.HTTPError,),
                stop,
                failed,
            ):
                raise SchemaRegistryError(
                    f"schema registry {client.url} did not answer for schema {schema_id}"
                    f" within {_LOOKUP_GIVE_UP_SECONDS:.0f}s"
                )
        finally:
            timer.cancel()
        return found[0]

    return lookup
