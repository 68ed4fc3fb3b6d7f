"""Scenario 5: garbage, oversized and hostile input ends in the DLQ or the execution log,
with reasons, while valid traffic keeps flowing."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from automation_core.model import Action, Contact, Execution, ExecutionStatus, StageChanged
from runtime import codec
from runtime.dlq import HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON
from tests.reliability.harness import Load, Pipeline, expected_actions, sleep_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

HOSTILE = (
    "{{ item.responsible_id }}",
    "{=Document:TITLE} {=Document:RESPONSIBLE_ID}",
    "'); DROP TABLE deals; --",
    "tab\there\r\nnew line \x1b[31m bell\x07 nul\x00 end",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
)


VALID_AVRO = ("unknown pipeline", "unknown stage", "missing required ids", "1 MB event",
              "10,000 contacts")  # fmt: skip


def bad_messages(load: Load, run_id: str) -> list[tuple[str, bytes, bytes]]:
    """(what, key, value) of every kind of bad input."""
    valid = codec.encode(load.new_event("WON"))
    unknown_pipeline = load.new_event("WON")
    unknown_pipeline = dataclasses.replace(unknown_pipeline, pipeline_id="no-such-pipeline")
    unknown_stage = dataclasses.replace(load.new_event("WON"), stage_id="NO_SUCH_STAGE")
    missing = dataclasses.replace(load.new_event("WON"), event_id="", item_id="")
    execution = Execution(
        rule_id="r", item_key="DEAL:1", event_id="e", status=ExecutionStatus.FIRED,
        recorded_at=datetime.now(UTC),
    )  # fmt: skip
    big = load.new_event("WON")
    big = dataclasses.replace(
        big, item=dataclasses.replace(big.item, fields={"UF_BLOB": "x" * 1_000_000})
    )
    crowd = load.new_event("WON", contacts=tuple(Contact(f"p-{n}", f"N{n}") for n in range(10_000)))

    def keyed(what: str, event: StageChanged) -> tuple[str, bytes, bytes]:
        return (what, event.key.encode(), codec.encode(event))

    return [
        ("random bytes", b"DEAL:x1", os.urandom(200)),
        ("random bytes with magic", b"DEAL:x2", b"\xc3\x01" + os.urandom(60)),
        ("truncated Avro", b"DEAL:x3", valid[: len(valid) // 2]),
        ("unknown fingerprint", b"DEAL:x4", b"\xc3\x01" + os.urandom(8) + valid[10:]),
        ("empty value", b"DEAL:x5", b""),
        keyed("unknown pipeline", unknown_pipeline),
        keyed("unknown stage", unknown_stage),
        keyed("missing required ids", missing),
        ("another record type", b"DEAL:1", codec.encode(execution)),
        keyed("1 MB event", big),
        keyed("10,000 contacts", crowd),
    ]


def test_bad_input_ends_in_the_dlq_or_execution_log_and_valid_traffic_keeps_flowing(
    pipeline: Pipeline, run_id: str
) -> None:
    load = Load(pipeline.settings, run_id, random.randrange(1 << 30)).start(100, 30)
    sleep_until(time.monotonic() + 5)
    positions: dict[str, tuple[int, int] | None] = {}
    keys: dict[str, bytes] = {}
    bad = bad_messages(load, run_id)
    for what, key, value in bad:
        positions[what] = None
        keys[what] = key
        load.send_raw(key, value, lambda p, what=what: positions.__setitem__(what, p))
    hostile: list[StageChanged] = []
    for text in HOSTILE:
        event = load.new_event("WON", title=text, company_title=text)
        hostile.append(event)
        load.send(event)
        approval = load.new_event("APPROVAL", title=text, company_title=text)
        hostile.append(approval)
        load.send(approval)
    load.wait()

    valid_avro = [codec.decode(value) for what, _k, value in bad if what in VALID_AVRO]
    allowed = expected_actions(e for e in valid_avro if isinstance(e, StageChanged))
    row = pipeline.finish("bad input (11 kinds) + hostile templates", load, allowed=allowed)

    assert (row.lost, row.duplicates) == (0, 0), row.notes
    letters = {
        (int(h[HEADER_PARTITION]), int(h[HEADER_OFFSET])): h[HEADER_REASON].decode()
        for h in (dict(m.headers() or []) for m in pipeline.dlq_records())
        if HEADER_OFFSET in h
    }
    fates = {
        what: fate(pipeline, letters, position, keys[what].decode())
        for what, position in positions.items()
    }
    print("bad input fates:", fates)
    assert all(fates.values()), fates
    refused = {action.item_key for action in dlq_actions(pipeline)}
    for event in hostile:
        titles = [title for (title,) in titles_of(pipeline, event.key)]
        assert titles or event.key in refused, f"nothing for hostile event {event.key}"
        if event.stage_id == "WON" and titles:  # the copy keeps the name verbatim
            assert titles == [f"{event.item.title} (copy)"], titles


def fate(
    pipeline: Pipeline, letters: dict[tuple[int, int], str], position: Any, item_key: str
) -> str:
    """Where the message at `position` ended: its DLQ reason, its item's execution
    records with reasons, or its item's actions."""
    if position is None:
        return ""
    if position in letters:
        return f"dlq:{letters[position]}"
    assert pipeline.settings.database_url is not None
    with psycopg.connect(pipeline.settings.database_url.get_secret_value()) as conn:
        logged = conn.execute(
            "SELECT status, reason FROM executions WHERE item_key = %s AND reason IS NOT NULL",
            (item_key,),
        ).fetchall()
    if logged:
        return f"executions:{logged}"
    if titles_of(pipeline, item_key):
        return "actions written"
    return ""


def dlq_actions(pipeline: Pipeline) -> list[Action]:
    """Actions a sink refused for good (e.g. text Postgres cannot store)."""
    found = []
    for message in pipeline.dlq_records():
        with contextlib.suppress(codec.InvalidMessage):
            record = codec.decode(message.value() or b"")
            if isinstance(record, Action):
                found.append(record)
    return found


def titles_of(pipeline: Pipeline, item_key: str) -> list[tuple[Any, ...]]:
    assert pipeline.settings.database_url is not None
    with psycopg.connect(pipeline.settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT title FROM deals WHERE source_item_key = %s"
            " UNION ALL SELECT subject FROM activities WHERE item_key = %s",
            (item_key, item_key),
        ).fetchall()
