"""Limits and key sets of the rules file."""

from __future__ import annotations

import re

from automation_core.rule_spec import ACTION_SPECS
from automation_core.spec_fields import yaml_keys

MAX_RULES = 10_000
MAX_FILE_CHARS = 5_000_000
MAX_INVITEES = 50
MAX_FILES = 20
MAX_IN_VALUES = 1000
MAX_ACTIVITY_MINUTES = 7 * 24 * 60
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_TOP_KEYS = {"pipelines", "working_time", "rules"}
_RULE_KEYS = {
    "id",
    "trigger",
    "condition",
    "when",
    "position",
    "after_previous",
    "enabled",
    "cancel_on_stage_exit",
    "action",
}
_TIME_KEYS = {"delay", "at", "timezone", "field", "offset", "working_time", "datetime"}
_ACTION_KEYS = {spec.kind: {"type", *yaml_keys(spec)} for spec in ACTION_SPECS}
