"""Logging for every command, configured once: plain text, or one JSON object per line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from runtime.settings import Settings

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Chatty at INFO (one line per HTTP request, per Faust table/monitor step): failures
# still surface at WARNING and through our own logs.
_QUIET = {"httpx": logging.WARNING, "aiokafka": logging.WARNING}


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}` plus `"exception"` when one is attached."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_json else logging.Formatter(PLAIN_FORMAT)


def configure(settings: Settings) -> None:
    """The root logger writes to stderr at `log_level`, as text or JSON (`log_json`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
    # Warnings (e.g. deprecations in dependencies) go through the same handler.
    logging.captureWarnings(True)
