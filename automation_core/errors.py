"""Named failure kinds of the pure core: input that can never be processed."""

from __future__ import annotations


class InvalidEvent(Exception):
    """An event that breaks the contract; it goes to the DLQ, never retried.

    `reason` is a short fixed code (a metric label, a DLQ header); the message names the
    offending field path, e.g. `item.contacts[0].id: required`.
    """

    reason = "invalid_event"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
