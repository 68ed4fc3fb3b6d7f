"""What every long-running processor shares: a metrics endpoint and graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server

from crm_automation.settings import Settings

logger = logging.getLogger(__name__)


def serve_metrics(settings: Settings, port: int) -> CollectorRegistry:
    """A fresh registry served on `metrics_host:port` (127.0.0.1 unless configured)."""
    registry = CollectorRegistry()
    if port:
        start_http_server(port, addr=settings.metrics_host, registry=registry)
        logger.info("metrics on http://%s:%s/metrics", settings.metrics_host, port)
    return registry


def stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the returned event: finish the batch, commit, exit."""
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal=%s received, stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def run_until_stopped(
    settings: Settings, port: int, target: Callable[[CollectorRegistry, threading.Event], None]
) -> None:
    registry = serve_metrics(settings, port)
    target(registry, stop_on_signals())
