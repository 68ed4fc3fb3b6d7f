"""Messages written with an older version of a schema decode with today's codec.

Every released version of each top-level schema is kept in `schemas/avro/history/`
(docs/wire-format.md, "Compatibility rule"); the codec reads an older writer against the
current schema. One test per (older writer, current reader) pair says what the reader
gets for the fields added since: their defaults.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from automation_core.model import Action, CallWebhook, CreateLead, PlanActivity, TimerCommand
from runtime import codec
from runtime.codec import records
from runtime.codec.framing import (
    MAGIC,
    WriterSchema,
    history_path,
    history_text,
    load_older_writers,
    load_writer_schemas,
)
from schemas import AVRO_DIR
from tests.unit.strategies import actions, timer_commands


def without_lead_generation(action: Action) -> Action:
    """CreateLead.copy_depth came with Action cad15cff0c001e98."""
    if isinstance(action.payload, CreateLead):
        return dataclasses.replace(
            action, payload=dataclasses.replace(action.payload, copy_depth=0)
        )
    return action


def without_activity_type(action: Action) -> Action:
    """PlanActivity.activity_type came with Action 483ab49d68bbb72a."""
    if isinstance(action.payload, PlanActivity):
        payload = dataclasses.replace(action.payload, activity_type="task")
        return dataclasses.replace(action, payload=payload)
    return action


def before_lead_generations(action: Action) -> Action:
    return without_activity_type(without_lead_generation(action))


def unchanged(action: Action) -> Action:
    return action


OLDER_ACTIONS: dict[str, Callable[[Action], Action]] = {
    "a0d8331d140c10a1": before_lead_generations,
    "cad15cff0c001e98": without_activity_type,
    "483ab49d68bbb72a": unchanged,
}
"""Each older Action version, and what a current action reads as after it went through it."""

OLDER_TIMER_COMMANDS: dict[str, tuple[str, bool]] = {
    "dfa527b785b60ed9": ("a0d8331d140c10a1", False),
    "2a8e2edfdbf178e6": ("cad15cff0c001e98", False),
    "2884e78d887b6351": ("cad15cff0c001e98", True),
    "c272fc82b484885a": ("483ab49d68bbb72a", True),
}
"""Each older TimerCommand version: the Action version it holds, and whether it carries
`rule_version` (added with 2884e78d887b6351)."""


def no_webhook(action: Action | None) -> bool:
    """Webhook actions came with Action 17fd44308a549435: no older version holds one."""
    return action is None or not isinstance(action.payload, CallWebhook)


older_actions = actions.filter(no_webhook)
older_timer_commands = timer_commands.filter(lambda command: no_webhook(command.action))


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


def test_the_current_version_of_every_schema_is_recorded_in_the_history() -> None:
    # A changed .avsc fails here until its new version is added next to the old ones
    # (which stay: messages written with them are still on the topics).
    for name, writer in load_writer_schemas().items():
        path = history_path(AVRO_DIR, name, writer.fingerprint)
        assert path.exists(), f"{name}: add {path.name} (framing.history_text) to the history"
        assert json.loads(path.read_text()) == json.loads(history_text(writer))


def test_every_older_version_is_known_to_the_codec_and_covered_by_a_test_here() -> None:
    known = codec.writer_schemas()
    covered = {("Action", fp) for fp in OLDER_ACTIONS} | {
        ("TimerCommand", fp) for fp in OLDER_TIMER_COMMANDS
    }
    older_writers = load_older_writers(known)
    assert {(w.name, w.fingerprint.hex()) for w in older_writers} == covered
    for writer in older_writers:
        assert writer.fingerprint not in {w.fingerprint for w in known.values()}
        assert codec.schema_name_of(MAGIC + writer.fingerprint) == writer.name


@pytest.mark.parametrize("fingerprint", sorted(OLDER_ACTIONS))
@given(data=st.data())
def test_an_action_of_an_older_version_reads_with_the_defaults_of_later_fields(
    fingerprint: str, data: st.DataObject
) -> None:
    action = data.draw(older_actions)
    encoded = written_with(older("Action", fingerprint), records.action_to_avro(action))
    assert codec.decode(encoded) == OLDER_ACTIONS[fingerprint](action)


@pytest.mark.parametrize("fingerprint", sorted(OLDER_TIMER_COMMANDS))
@given(data=st.data())
def test_a_timer_command_of_an_older_version_reads_as_such_and_keeps_its_actions_version(
    fingerprint: str, data: st.DataObject
) -> None:
    command: TimerCommand = data.draw(older_timer_commands)
    action_version, has_rule_version = OLDER_TIMER_COMMANDS[fingerprint]
    encoded = written_with(
        older("TimerCommand", fingerprint), records.timer_command_to_avro(command)
    )
    read_action = None if command.action is None else OLDER_ACTIONS[action_version](command.action)
    assert codec.decode(encoded) == dataclasses.replace(
        command,
        action=read_action,
        rule_version=command.rule_version if has_rule_version else None,
    )
    # The scheduler stores the embedded action as a message of its own: the older
    # Action it holds, under that version's header.
    embedded = codec.embedded_action(encoded)
    if command.action is None:
        assert embedded is None
    else:
        assert embedded is not None
        assert embedded[2:10].hex() == action_version
        assert codec.decode(embedded) == read_action
