"""Durations and times of day as written in rules files: `90s`, `10m`, `6h`, `180d`, `6mo`."""

from __future__ import annotations

import re
from datetime import time

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"([+-]?)((?:\d{1,7}(?:mo|[wdhms]))+)")
_PART = re.compile(r"(\d{1,7})(mo|[wdhms])")
MAX_MONTHS = 120
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")

MAX_DURATION_SECONDS = 3660 * 86400
"""About ten years: anything longer is a typo, not a business rule."""


def parse_duration(text: str) -> int:
    """Seconds in `text` (`90s`, `10m`, `1h30m`, `180d`, `2w`, `-3d`); ValueError if malformed."""
    months, seconds = parse_delay(text)
    if months:
        raise ValueError(f"bad duration {text!r} (months, 'mo', only in a delay)")
    return seconds


def parse_delay(text: str) -> tuple[int, int]:
    """(calendar months, seconds) in `text`: `6mo`, `1mo15d`, and whatever
    `parse_duration` reads; ValueError if malformed."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r} (expected e.g. 90s, 10m, 6h, 180d, 6mo, -3d)")
    sign, body = match.groups()
    parts = _PART.findall(body)
    units = [unit for _, unit in parts]
    if len(units) != len(set(units)):
        raise ValueError(f"bad duration {text!r} (a unit appears twice)")
    months = sum(int(n) for n, unit in parts if unit == "mo")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts if unit != "mo")
    if seconds > MAX_DURATION_SECONDS or months > MAX_MONTHS:
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION_SECONDS // 86400} days")
    if sign == "-":
        return -months, -seconds
    return months, seconds


def format_duration(seconds: int) -> str:
    """The shortest text `parse_duration` reads back as `seconds`."""
    if seconds == 0:
        return "0s"
    sign, rest, parts = ("-" if seconds < 0 else ""), abs(seconds), []
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def parse_time_of_day(text: str) -> time:
    """`14:00` → time(14, 0); ValueError unless exactly HH:MM."""
    match = _TIME_OF_DAY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad time of day {text!r} (expected HH:MM, e.g. '14:00')")
    return time(int(match.group(1)), int(match.group(2)))
