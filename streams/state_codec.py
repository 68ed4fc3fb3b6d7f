"""The engine's per-item state as compact JSON bytes in the Faust table."""

from __future__ import annotations

import json
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_string

from automation_core.evaluate import ItemState

_DECODER = json.JSONDecoder()


def state_to_bytes(state: ItemState) -> bytes:
    """Byte for byte `json.dumps({"p": …, "s": …, "e": …, "t": …, "r": […]},
    separators=(",", ":"))`, built without `json.dumps` (which makes an encoder per call
    when given separators): every event that changes an item writes one."""
    recent = ",".join(map(_json_string, state.recent_event_ids))
    return (
        f'{{"p":{_json_string(state.pipeline_id)},"s":{_json_string(state.stage_id)},'
        f'"e":{_json_string(state.stage_entry_id)},'
        f'"t":{_json_string(state.last_occurred_at.isoformat())},"r":[{recent}]}}'
    ).encode()


def state_from_bytes(data: bytes | None) -> ItemState | None:
    if data is None:
        return None
    raw = _DECODER.decode(data.decode())
    return ItemState(
        pipeline_id=raw["p"],
        stage_id=raw["s"],
        stage_entry_id=raw["e"],
        last_occurred_at=datetime.fromisoformat(raw["t"]),
        recent_event_ids=tuple(raw["r"]),
    )
