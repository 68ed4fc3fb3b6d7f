"""Messages written with an older version of a schema decode with today's codec.

Every released version of each top-level schema is kept in `schemas/avro/history/`
(docs/wire-format.md, "Compatibility rule"); the codec reads an older writer against the
current schema. One test per (older writer, current reader) pair says what the reader
gets for the fields added since.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import fastavro
from hypothesis import given

from automation_core.model import Action, CreateLead, TimerCommand
from crm_automation import codec
from crm_automation.codec import records
from crm_automation.codec.framing import (
    MAGIC,
    WriterSchema,
    history_path,
    history_text,
    load_older_writers,
    load_writer_schemas,
)
from schemas import AVRO_DIR
from tests.unit.test_codec import actions, timer_commands

ACTION_BEFORE_LEAD_GENERATIONS = "a0d8331d140c10a1"
"""Action before CreateLead carried `copy_depth` (2026-12-01)."""
TIMER_COMMAND_BEFORE_LEAD_GENERATIONS = "dfa527b785b60ed9"
"""TimerCommand holding that Action."""
TIMER_COMMAND_BEFORE_VERSION_CANCELS = "2a8e2edfdbf178e6"
"""TimerCommand before rule cancels could name a rule version (2026-12-01), holding the
current Action."""


def older(name: str, fingerprint_hex: str) -> WriterSchema:
    (writer,) = (
        w
        for w in load_older_writers(load_writer_schemas())
        if w.name == name and w.fingerprint.hex() == fingerprint_hex
    )
    return writer


def written_with(writer: WriterSchema, avro: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(MAGIC + writer.fingerprint)
    fastavro.schemaless_writer(out, writer.parsed, avro)  # fields unknown to it: left out
    return out.getvalue()


def without_lead_generation(action: Action) -> Action:
    if isinstance(action.payload, CreateLead):
        return dataclasses.replace(
            action, payload=dataclasses.replace(action.payload, copy_depth=0)
        )
    return action


def test_the_current_version_of_every_schema_is_recorded_in_the_history() -> None:
    # A changed .avsc fails here until its new canonical form is added next to the old
    # ones (which stay: messages written with them are still on the topics).
    for name, writer in load_writer_schemas().items():
        path = history_path(AVRO_DIR, name, writer.fingerprint)
        assert path.exists(), f"{name}: add {path.name} (framing.history_text) to the history"
        assert json.loads(path.read_text()) == json.loads(history_text(writer))


def test_every_older_version_is_known_to_the_codec_under_its_own_fingerprint() -> None:
    known = codec.writer_schemas()
    for writer in load_older_writers(known):
        assert writer.fingerprint not in {w.fingerprint for w in known.values()}
        assert codec.schema_name_of(MAGIC + writer.fingerprint) == writer.name


@given(actions)
def test_an_action_written_before_leads_carried_their_generation_reads_as_generation_0(
    action: Action,
) -> None:
    writer = older("Action", ACTION_BEFORE_LEAD_GENERATIONS)
    data = written_with(writer, records.action_to_avro(action))
    assert codec.decode(data) == without_lead_generation(action)


@given(timer_commands)
def test_a_timer_command_written_before_leads_carried_their_generation_reads_as_such(
    command: TimerCommand,
) -> None:
    writer = older("TimerCommand", TIMER_COMMAND_BEFORE_LEAD_GENERATIONS)
    data = written_with(writer, records.timer_command_to_avro(command))
    action = None if command.action is None else without_lead_generation(command.action)
    assert codec.decode(data) == dataclasses.replace(command, action=action, rule_version=None)
    # The scheduler stores the embedded action as a message of its own: the older
    # Action it holds, under that version's header.
    embedded = codec.embedded_action(data)
    if command.action is None:
        assert embedded is None
    else:
        assert embedded is not None
        assert embedded[2:10].hex() == ACTION_BEFORE_LEAD_GENERATIONS
        assert codec.decode(embedded) == action


@given(timer_commands)
def test_a_timer_command_written_before_rule_cancels_named_a_version_cancels_every_version(
    command: TimerCommand,
) -> None:
    writer = older("TimerCommand", TIMER_COMMAND_BEFORE_VERSION_CANCELS)
    data = written_with(writer, records.timer_command_to_avro(command))
    assert codec.decode(data) == dataclasses.replace(command, rule_version=None)
    embedded = codec.embedded_action(data)
    if command.action is None:
        assert embedded is None
    else:
        assert embedded == codec.encode(command.action)
