"""The engine's per-item state as compact JSON bytes in the Faust table."""

from __future__ import annotations

import json
from datetime import datetime

from automation_core.evaluate import ItemState


def state_to_bytes(state: ItemState) -> bytes:
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


def state_from_bytes(data: bytes | None) -> ItemState | None:
    if data is None:
        return None
    raw = json.loads(data)
    return ItemState(
        pipeline_id=raw["p"],
        stage_id=raw["s"],
        stage_entry_id=raw["e"],
        last_occurred_at=datetime.fromisoformat(raw["t"]),
        recent_event_ids=tuple(raw["r"]),
    )
