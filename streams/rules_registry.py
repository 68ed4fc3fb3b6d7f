"""The engine's view of `automation.rules`: rules and pipelines, and the trigger index."""

from __future__ import annotations

import logging

from automation_core.evaluate import RuleIndex, rule_index_from
from automation_core.model import Pipeline, Rule
from runtime import codec
from runtime.rules_topic import PIPELINE_PREFIX

logger = logging.getLogger(__name__)

PIPELINE_KEY_PREFIX = PIPELINE_PREFIX.encode()


class RulesRegistry:
    """Mirrors the compacted rules topic; the index is rebuilt lazily after a change.

    A rebuild re-parses only the rules that changed since the last index (the others are
    taken from it), so a rules edit while events flow costs one dict pass, not N parses.
    """

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self._index: RuleIndex | None = None
        self._last_index: RuleIndex | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the rules topic (a null value deletes its key)."""
        if key is None:
            logger.warning("rules record without key ignored")
            return
        name = key.decode("utf-8", "replace")
        if value is None:
            if key.startswith(PIPELINE_KEY_PREFIX):
                self.pipelines.pop(name.removeprefix(PIPELINE_PREFIX), None)
            else:
                self._rules.pop(name, None)
            self._index = None
            return
        try:
            record = codec.decode(value)
        except codec.InvalidMessage as exc:
            logger.error("undecodable rules record key=%s reason=%s", name, exc.reason)
            return
        if isinstance(record, Pipeline):
            self.pipelines[record.id] = record
        elif isinstance(record, Rule):
            self._rules[record.id] = record
        else:
            logger.error("unexpected record on rules topic key=%s type=%s", name, type(record))
            return
        self._index = None

    @property
    def index(self) -> RuleIndex:
        if self._index is None:
            self._index = rule_index_from(self._rules.values(), self._last_index)
            self._last_index = self._index
        return self._index

    def __len__(self) -> int:
        return len(self._rules)
