"""Errors of the rules file: every problem found, each with the rule id and the path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a rules file, e.g. `rules[2] (call-client).when.delay`."""

    path: str
    message: str
    line: int | None = None
    """The line of the rules file the path points at, when it came from a file."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RulesInvalid(ValueError):
    """The rules file has problems; `problems` lists all of them, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            f"{len(problems)} problem(s) in the rules file: "
            + "; ".join(str(p) for p in problems[:5])
        )


class InvalidRuleSpec(ValueError):
    """A `Rule.spec` (e.g. read back from Kafka) that is not a valid canonical spec."""
