"""`crm-automation dlq`: the dead letters, by reason, source and time, and their replay."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer
from confluent_kafka import Producer

from crm_automation.commands._common import kafka_settings
from runtime import dlq, kafka_clients, topics
from runtime.kafka_clients import Outgoing
from runtime.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Dead letters: list them, replay them.")


@dataclass(frozen=True)
class Letter:
    """One dead letter as the DLQ holds it."""

    partition: int
    offset: int
    at: datetime
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get(dlq.HEADER_REASON, "")

    @property
    def source(self) -> str:
        return self.headers.get(dlq.HEADER_TOPIC, "")

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "at": self.at.isoformat(),
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "reason": self.reason,
            "source_topic": self.source,
            "source_partition": self.headers.get(dlq.HEADER_PARTITION),
            "source_offset": self.headers.get(dlq.HEADER_OFFSET),
            "error_class": self.headers.get(dlq.HEADER_CLASS),
            "message": self.headers.get(dlq.HEADER_MESSAGE),
            "process": self.headers.get(dlq.HEADER_CONNECTOR),
            "stage": self.headers.get(dlq.HEADER_STAGE),
            "stacktrace": self.headers.get(dlq.HEADER_STACKTRACE),
            "value_bytes": None if self.value is None else len(self.value),
        }


def read_letters(s: Settings) -> list[Letter]:
    """Every dead letter on the DLQ topic, read up to its end (no group, nothing committed)."""
    name = s.topic(topics.DLQ)
    try:
        messages = kafka_clients.read_to_end(s, name, f"crm-automation-dlq-{uuid.uuid4().hex}")
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    letters = []
    for message in messages:
        raw_headers: list[tuple[str, bytes | None]] = message.headers() or []  # type: ignore[assignment]
        letters.append(
            Letter(
                partition=message.partition() or 0,
                offset=message.offset() or 0,
                at=datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC),
                key=message.key(),
                value=message.value(),
                headers={
                    k: "" if v is None else v.decode("utf-8", "replace") for k, v in raw_headers
                },
            )
        )
    return letters


def _chosen(
    letters: list[Letter], reason: str | None, source: str | None, since: datetime | None
) -> list[Letter]:
    return [
        letter
        for letter in letters
        if (reason is None or letter.reason == reason)
        and (source is None or letter.source == source or letter.source.endswith(f".{source}"))
        and (since is None or letter.at >= since)
    ]


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


REASON = typer.Option(None, "--reason", help="Only this reason (e.g. unknown_pipeline).")
SOURCE = typer.Option(None, "--source", help="Only letters from this topic.")
SINCE = typer.Option(None, "--since", help="Only letters dead-lettered at or after this time.")


@app.command("list")
def list_(
    reason: str | None = REASON,
    source: str | None = SOURCE,
    since: str | None = SINCE,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per letter."),
) -> None:
    """The dead letters, oldest first per partition, with their reason and origin."""
    letters = _chosen(read_letters(kafka_settings()), reason, source, _since(since))
    for letter in letters:
        if as_json:
            typer.echo(json.dumps(letter.to_json(), ensure_ascii=False))
        else:
            d = letter.to_json()
            typer.echo(
                f"{d['partition']}:{d['offset']} {d['at']} {d['reason']} from"
                f" {d['source_topic']}[{d['source_partition']}]@{d['source_offset']}"
                f" key={d['key']}: {d['message']}"
            )
    if not as_json:
        typer.echo(f"{len(letters)} dead letter(s)")


@app.command("replay")
def replay(
    reason: str | None = REASON,
    source: str | None = SOURCE,
    since: str | None = SINCE,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be replayed."),
) -> None:
    """Produce the chosen dead letters again to their source topic, once their cause is
    fixed (a missing pipeline applied, a refusing database back). Safe to repeat: ids are
    deterministic, and a letter processed before is recognised as a duplicate."""
    s = kafka_settings()
    letters = [
        letter
        for letter in _chosen(read_letters(s), reason, source, _since(since))
        if letter.value is not None and letter.source
    ]
    by_topic: dict[str, list[Outgoing]] = {}
    for letter in letters:
        by_topic.setdefault(letter.source, []).append(
            Outgoing(letter.source, letter.key, letter.value)
        )
    for topic, records in sorted(by_topic.items()):
        if dry_run:
            typer.echo(f"would replay {len(records)} letter(s) to {topic}")
            continue
        producer = Producer(kafka_clients.producer_config(s))
        kafka_clients.produce_and_confirm(producer, records)
        typer.echo(f"replayed {len(records)} letter(s) to {topic}")
    if not by_topic:
        typer.echo("no dead letter to replay (letters without their original value are skipped)")
