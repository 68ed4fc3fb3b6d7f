"""Deterministic ids: the same item, event and rule always give the same action and entity ids.

The item key is part of every id's material: two items whose producer gave their events
the same event id still get ids of their own (and so effects of their own).
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring_ascii as _json_string

ACTION_ID_HEX_CHARS = 32


def action_id(item_key: str, event_id: str, rule_id: str, rule_version: str, index: int) -> str:
    """Hex sha256 of (item key, event id, rule id, rule version, action index), 32 characters.

    The hashed material is the compact JSON array of the five, byte for byte what
    `json.dumps([...], separators=(",", ":"))` writes (ids must not change between
    releases: sinks dedupe on them), built without `json.dumps`: it is computed for
    every rule an event triggers.
    """
    return action_id_of(
        event_material(item_key, event_id), rule_material(rule_id, rule_version, index)
    )


def event_material(item_key: str, event_id: str) -> str:
    """The event's head of an action id's material: the same for every rule it runs."""
    return f"[{_json_string(item_key)},{_json_string(event_id)},"


def rule_material(rule_id: str, rule_version: str, index: int) -> str:
    """The rule's tail of an action id's material: the same for every event it runs for."""
    return f"{_json_string(rule_id)},{_json_string(rule_version)},{int(index)}]"


def action_id_of(event_part: str, rule_part: str) -> str:
    """`action_id` of the two parts of its material (`event_material`, `rule_material`)."""
    return hashlib.sha256((event_part + rule_part).encode()).hexdigest()[:ACTION_ID_HEX_CHARS]


def completion_id(item_key: str, event_id: str, stage_entry_id: str) -> str:
    """The id of the CompleteActivities action for the stage entry an event ends.

    The material is byte for byte `json.dumps(["complete_activities", item_key, event_id,
    stage_entry_id])` (default separators), built without `json.dumps`: every stage exit
    computes one.
    """
    material = (
        f'["complete_activities", {_json_string(item_key)}, {_json_string(event_id)},'
        f" {_json_string(stage_entry_id)}]"
    )
    return hashlib.sha256(material.encode()).hexdigest()[:ACTION_ID_HEX_CHARS]


def derived_id(prefix: str, action_id: str) -> str:
    """The id of the lead, deal or activity an action creates: `lead-<action id>`."""
    return f"{prefix}-{action_id}"


def pick(candidates: tuple[str, ...], action_id: str) -> str:
    """A deterministic choice among several candidates, by the action id's hash."""
    return candidates[int(action_id, 16) % len(candidates)]
