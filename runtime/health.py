"""What every long-running processor shares: /metrics, /healthz, /readyz and graceful shutdown.

The endpoint is a small `ThreadingHTTPServer` bound to `metrics_host` (127.0.0.1 unless
configured; prometheus_client's own server would bind 0.0.0.0):

- `GET /metrics`: Prometheus text format of the process's registry.
- `GET /healthz`: 200 `ok` while the process runs.
- `GET /readyz`: 200 `ready` once every readiness condition holds (e.g. partitions
  assigned and the first poll done, database reachable); 503 with the first unmet
  condition as a short plain-text reason otherwise.
"""

from __future__ import annotations

import importlib.metadata
import logging
import signal
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from runtime.settings import Settings

logger = logging.getLogger(__name__)

Probe = Callable[[], str | None]
"""A readiness check run per /readyz request: None when fine, else a short reason."""


class Readiness:
    """Whether this process is ready: named conditions it sets, plus probes run on request.

    Conditions start unmet with a reason (`require`); the processor marks them met
    (`ready`) or unmet again (`not_ready`). Thread-safe: set from consumer threads or the
    event loop, read by the HTTP server's threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unmet: dict[str, str] = {}
        self._probes: list[tuple[str, Probe]] = []

    def require(self, condition: str, reason: str) -> Readiness:
        with self._lock:
            self._unmet[condition] = reason
        return self

    def ready(self, condition: str = "consuming") -> None:
        with self._lock:
            if self._unmet.pop(condition, None) is not None:
                logger.info("ready condition=%s", condition)

    def not_ready(self, condition: str, reason: str) -> None:
        with self._lock:
            if condition not in self._unmet:
                logger.info("not ready condition=%s reason=%s", condition, reason)
            self._unmet[condition] = reason

    def add_probe(self, name: str, probe: Probe) -> None:
        with self._lock:
            self._probes.append((name, probe))

    def status(self) -> tuple[bool, str]:
        """(True, "ready") or (False, "<condition>: <reason>") for the first unmet one."""
        with self._lock:
            unmet = dict(self._unmet)
            probes = list(self._probes)
        for condition, reason in unmet.items():
            return False, f"{condition}: {reason}"
        for name, probe in probes:
            try:
                failure = probe()
            except Exception as exc:  # noqa: BLE001 - a failing probe means "not ready"
                failure = f"probe failed: {type(exc).__name__}"
            if failure is not None:
                return False, f"{name}: {failure}"
        return True, "ready"


def consuming(processor: str) -> Readiness:
    """Readiness of a consuming processor: unmet until its first poll after joining."""
    return Readiness().require("consuming", f"{processor} has not polled Kafka yet")


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    readiness: Readiness

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/readyz":
            ready, reason = self.readiness.status()
            self._reply(200 if ready else 503, f"{reason}\n".encode())
        else:
            self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

    def _reply(
        self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one line per scrape is noise


def serve(
    settings: Settings, port: int, registry: CollectorRegistry, readiness: Readiness
) -> ThreadingHTTPServer | None:
    """Serve /metrics, /healthz and /readyz on `metrics_host:port` (0: no endpoint)."""
    if not port:
        return None
    handler = type("Handler", (_Handler,), {"registry": registry, "readiness": readiness})
    inherited = settings.metrics_sockets.get(port)
    if inherited is None:
        server = ThreadingHTTPServer((settings.metrics_host, port), handler)
    else:
        server = _serve_inherited(inherited, port, handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    logger.info(
        "metrics on http://%s:%s/metrics (also /healthz, /readyz)", settings.metrics_host, port
    )
    return server


def _serve_inherited(fd: int, port: int, handler: type[_Handler]) -> ThreadingHTTPServer:
    """A server on a socket the parent bound to `port` and handed over as `fd`."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise RuntimeError(
            f"metrics_sockets names fd {fd} for port {port}, but it is not an open socket "
            f"({exc.strerror}): start the process with that descriptor inherited"
        ) from None
    if sock.getsockname()[1] != port:
        sock.detach()  # someone else's socket: leave it open
        raise RuntimeError(f"metrics_sockets names fd {fd} for port {port}: not bound to it")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
    server.server_activate()
    return server


def stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the returned event: finish the batch, commit, exit."""
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal=%s received, stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def process_registry(process: str) -> CollectorRegistry:
    """A process's registry: its own metrics plus the standard `process_*` (CPU, memory,
    open files) and `python_info` collectors, and `crm_automation_build_info` (version,
    process) so dashboards can tell which version runs where."""
    registry = CollectorRegistry()
    register_process_metrics(registry, process)
    return registry


def register_process_metrics(registry: CollectorRegistry, process: str) -> None:
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("crm_automation_build", "The running crm-automation.", registry=registry).info(
        {"version": version(), "process": process.replace(" ", "-")}
    )


def version() -> str:
    """The installed crm-automation's version."""
    try:
        return importlib.metadata.version("crm-automation")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_until_stopped(
    settings: Settings,
    process: str,
    port: int,
    target: Callable[[CollectorRegistry, threading.Event], None],
    readiness: Readiness | None = None,
) -> None:
    """Serve the endpoints, then run `target(registry, stop)` until a signal stops it."""
    registry = process_registry(process)
    server = serve(settings, port, registry, readiness or Readiness())
    try:
        target(registry, stop_on_signals())
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
