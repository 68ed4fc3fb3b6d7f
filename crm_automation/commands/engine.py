"""`crm-automation engine`: the Faust worker evaluating rules for every stage change."""

from __future__ import annotations

import logging

import faust

from crm_automation.commands._common import settings
from crm_automation.process import serve_metrics
from streams.app import build_engine


def engine() -> None:
    """Run the engine (Faust worker): stage changes in, actions, timers and executions out."""
    s = settings()
    registry = serve_metrics(s, s.engine_metrics_port)
    app = build_engine(s, registry)
    worker = faust.Worker(app, loglevel=logging.getLogger().level or logging.INFO)
    worker.execute_from_commandline()
