"""The engine's item state: the bytes stay what `json.dumps` wrote, so states written by
earlier releases read back and earlier releases read what this one writes."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone

from automation_core.evaluate import ItemState
from streams.state_codec import state_from_bytes, state_to_bytes

TRICKY = [
    "plain",
    'quote " and \\ backslash',
    "tab\tnew\nline\x00nul\x1f",
    "Grüße €",
    "😀 emoji",
    "",
    "</script>",
]


def json_dumps_bytes(state: ItemState) -> bytes:
    """How the state was written before (and must still read): `json.dumps` itself."""
    return json.dumps(
        {
            "p": state.pipeline_id,
            "s": state.stage_id,
            "e": state.stage_entry_id,
            "t": state.last_occurred_at.isoformat(),
            "r": list(state.recent_event_ids),
        },
        separators=(",", ":"),
    ).encode()


def states() -> list[ItemState]:
    rng = random.Random(7)
    zones = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=3)))
    made = []

    def pick() -> str:
        return rng.choice(TRICKY) + str(rng.randrange(1000))

    for n in range(200):
        made.append(
            ItemState(
                pipeline_id=pick(),
                stage_id=pick(),
                stage_entry_id=pick(),
                last_occurred_at=datetime(2026, 1, 1, tzinfo=zones[n % 3])
                + timedelta(microseconds=rng.randrange(10**13)),
                recent_event_ids=tuple(pick() for _ in range(rng.randrange(0, 65))),
            )
        )
    return made


def test_the_bytes_are_those_json_dumps_writes_and_read_back_to_the_same_state() -> None:
    for state in states():
        written = state_to_bytes(state)
        assert written == json_dumps_bytes(state)
        assert state_from_bytes(written) == state


def test_no_state_reads_as_none() -> None:
    assert state_from_bytes(None) is None
