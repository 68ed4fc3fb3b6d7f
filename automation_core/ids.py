"""Deterministic ids: the same event and rule always give the same action and entity ids."""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring_ascii as _json_string

ACTION_ID_HEX_CHARS = 32


def action_id(event_id: str, rule_id: str, rule_version: str, index: int) -> str:
    """Hex sha256 of (event id, rule id, rule version, action index), 32 characters.

    The hashed material is the compact JSON array of the four, byte for byte what
    `json.dumps([...], separators=(",", ":"))` writes (ids must never change), built
    without `json.dumps`: it is computed for every rule an event triggers.
    """
    material = (
        f"[{_json_string(event_id)},{_json_string(rule_id)},{_json_string(rule_version)},"
        f"{int(index)}]"
    )
    return hashlib.sha256(material.encode()).hexdigest()[:ACTION_ID_HEX_CHARS]


def completion_id(event_id: str, stage_entry_id: str) -> str:
    """The id of the CompleteActivities action for the stage entry an event ends."""
    material = json.dumps(["complete_activities", event_id, stage_entry_id])
    return hashlib.sha256(material.encode()).hexdigest()[:ACTION_ID_HEX_CHARS]


def derived_id(prefix: str, action_id: str) -> str:
    """The id of the lead, deal or activity an action creates: `lead-<action id>`."""
    return f"{prefix}-{action_id}"


def pick(candidates: tuple[str, ...], action_id: str) -> str:
    """A deterministic choice among several candidates, by the action id's hash."""
    return candidates[int(action_id, 16) % len(candidates)]
