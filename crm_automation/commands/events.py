"""`crm-automation events`: produce StageChanged JSON lines, tail any contract topic."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import typer
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from automation_core.errors import InvalidEvent
from automation_core.event_json import parse_stage_changed
from crm_automation.commands._common import EXIT_KAFKA, kafka_settings
from runtime import codec, kafka_clients, topics
from runtime.codec.json_view import avro_to_json
from runtime.kafka_clients import DeliveryFailed, Outgoing
from runtime.settings import Settings

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Produce and read contract events.")

EXIT_INVALID_LINES = 1


@contextmanager
def _open_lines(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    with handle:
        yield handle


def _parse_line(topic: str, raw: bytes) -> Outgoing:
    """One JSON line as a keyed, encoded record; raise InvalidEvent with the reason."""
    try:
        text = raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent("not valid UTF-8") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise InvalidEvent("invalid JSON: nested too deeply") from None
    event = parse_stage_changed(obj)
    return Outgoing(topic, event.key.encode(), codec.encode(event))


def _kafka_config(build: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        config: dict[str, Any] = build(*args, **kwargs)
    except kafka_clients.KafkaNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return config


@app.command("produce")
def produce(
    file: str = typer.Argument(..., metavar="FILE.jsonl", help="JSON lines, or - for stdin."),
    strict: bool = typer.Option(
        False, "--strict", help="Produce nothing at all if any line is invalid."
    ),
) -> None:
    """Validate StageChanged JSON lines and produce them to crm.stage-changes.

    An invalid line is reported on stderr as `line N: reason` and skipped; the exit code
    is 1 if any line was invalid (3 if Kafka did not confirm delivery).
    """
    s = kafka_settings()
    topic = s.topic(topics.STAGE_CHANGES)
    invalid = 0

    def valid_records(lines: BinaryIO) -> Iterator[Outgoing]:
        nonlocal invalid
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                yield _parse_line(topic, raw)
            except InvalidEvent as exc:
                invalid += 1
                typer.echo(f"line {number}: {exc}", err=True)

    with _open_lines(file) as lines:
        records: Iterator[Outgoing] | list[Outgoing] = valid_records(lines)
        if strict:
            records = list(records)  # validate everything before producing anything
            if invalid:
                typer.echo(f"produced 0, invalid {invalid} (--strict: nothing produced)")
                raise typer.Exit(EXIT_INVALID_LINES)
        producer = Producer(_kafka_config(kafka_clients.producer_config, s))
        try:
            produced = kafka_clients.produce_and_confirm(producer, records)
        except DeliveryFailed as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_KAFKA) from None
    typer.echo(f"produced {produced}, invalid {invalid}")
    logger.info("produced events=%d invalid=%d topic=%s", produced, invalid, topic)
    if invalid:
        raise typer.Exit(EXIT_INVALID_LINES)


def _full_topic_name(s: Settings, topic: str) -> str:
    if s.topic_prefix and topic.startswith(s.topic_prefix):
        return topic
    return s.topic(topic)


def render(message: Message) -> dict[str, Any]:
    """One consumed message as a JSON object: where it is, its key, its decoded value."""
    key = message.key()
    out: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": None if key is None else key.decode("utf-8", "replace"),
    }
    headers: list[tuple[str, bytes | None]] = message.headers() or []  # type: ignore[assignment]
    if headers:
        # A dead letter's reason and origin travel here (`__connect.errors.*`).
        out["headers"] = {
            name: None if raw is None else raw.decode("utf-8", "replace") for name, raw in headers
        }
    value = message.value()
    if value is None:
        out.update(schema=None, value=None)  # a tombstone (deleted rule or pipeline)
        return out
    try:
        codec.decode(value)  # the full check, domain conversion included
        schema, record = codec.decode_dict(value)
    except codec.InvalidMessage as exc:
        out.update(error=exc.reason, message=str(exc), value_hex=value[:64].hex())
        return out
    out.update(schema=schema, value=avro_to_json(record))
    return out


def _assign_all_partitions(consumer: Consumer, topic: str, from_beginning: bool) -> None:
    metadata = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        reason = metadata.error if metadata is not None else "unknown topic"
        typer.echo(f"error: cannot read topic {topic}: {reason}", err=True)
        raise typer.Exit(EXIT_KAFKA)
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in sorted(metadata.partitions)])


@app.command("tail")
def tail(
    topic: str = typer.Argument(..., help="A contract topic, with or without the prefix."),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the oldest message, not the next new one."
    ),
    max_messages: int | None = typer.Option(
        None, "--max", min=1, help="Stop after this many messages."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.0, help="Stop after this many seconds without a message."
    ),
) -> None:
    """Print a topic's messages as JSON lines (undecodable ones as error objects)."""
    s = kafka_settings()
    name = _full_topic_name(s, topic)
    # Partitions are assigned, not subscribed: no group join, no offsets committed.
    consumer = Consumer(
        _kafka_config(
            kafka_clients.consumer_config,
            s,
            f"crm-automation-tail-{uuid.uuid4().hex}",
            **{"enable.partition.eof": False},
        )
    )
    seen = 0
    try:
        _assign_all_partitions(consumer, name, from_beginning)
        last = time.monotonic()
        while max_messages is None or seen < max_messages:
            if timeout is not None and time.monotonic() - last > timeout:
                break
            wanted = 500 if max_messages is None else min(500, max_messages - seen)
            for message in consumer.consume(wanted, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise typer.Exit(EXIT_KAFKA)
                    if error.code() != KafkaError._PARTITION_EOF:
                        typer.echo(f"warning: {error}", err=True)
                    continue
                sys.stdout.write(json.dumps(render(message), ensure_ascii=False) + "\n")
                seen += 1
                last = time.monotonic()
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
