"""The activity colours a rule may name, with the RGB a calendar event gets for each."""

from __future__ import annotations

import re

COLORS: dict[str, tuple[int, int, int]] = {
    "yellow": (255, 255, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "red": (255, 0, 0),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (165, 42, 42),
    "teal": (0, 128, 128),
    "turquoise": (64, 224, 208),
}
"""CSS colour names and their RGB; any other colour is written `#RRGGBB`."""

HEX_COLOR = re.compile(r"#([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})([0-9A-Fa-f]{2})")
