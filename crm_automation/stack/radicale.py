"""Radicale, the local CalDAV server: its own config and storage folder under the stack home."""

from __future__ import annotations

import logging
import subprocess
import sys
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import urlsplit

from crm_automation.stack.processes import (
    PidFile,
    PortBook,
    Progress,
    StackError,
    log_tail,
    poll_until,
    port_open,
    spawn,
    terminate,
)
from runtime.settings import Settings

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# No passwords (a local server on 127.0.0.1), but Radicale still keys collections by the
# Basic-auth user name: send `user:anything`. `authenticated` rights let that user write
# any user's or room's calendar, which the calendar sink needs.
_CONFIG = """\
[server]
hosts = 127.0.0.1:{port}

[auth]
type = none

[rights]
type = authenticated

[storage]
filesystem_folder = {storage}

[web]
type = none

[logging]
level = warning
mask_passwords = True
"""


def caldav_answers(url: str, timeout: float = 3.0) -> bool:
    """Whether an HTTP server answers OPTIONS at `url` with a status below 500."""
    # http.client rather than httpx: a status poll should not log a line per request.
    parts = urlsplit(url)
    conn_type = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    conn = conn_type(parts.netloc, timeout=timeout)
    try:
        conn.request("OPTIONS", parts.path or "/")
        return conn.getresponse().status < 500
    except (OSError, HTTPException):
        return False
    finally:
        conn.close()


class RadicaleServer:
    """`python -m radicale` as a detached process with a pid file."""

    name = "caldav"

    def __init__(self, settings: Settings, ports: PortBook) -> None:
        self.settings = settings
        self.ports = ports
        self.dir = settings.home / "radicale"
        self.config = self.dir / "config"
        self.log = settings.home / "logs" / "radicale.log"
        # Held so the Popen is not garbage-collected (a ResourceWarning) while it runs.
        self._process: subprocess.Popen[bytes] | None = None
        self.pid_file = PidFile(settings.home / "run" / "radicale.pid", marker=str(self.config))

    @property
    def port(self) -> int:
        return self.ports.port("caldav", self.settings.caldav_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def pid(self) -> int | None:
        return self.pid_file.running_pid()

    def is_up(self) -> bool:
        return port_open("127.0.0.1", self.port) and caldav_answers(self.url)

    def start(self, progress: Progress = lambda _: None) -> None:
        if self.pid() is not None:
            # Running already (perhaps still booting, started by another process).
            if not poll_until(self.is_up, timeout=START_TIMEOUT, interval=0.3):
                raise StackError(f"Radicale runs but does not answer:\n{self._log_tails()}")
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        storage = self.dir / "collections"
        self.config.write_text(_CONFIG.format(port=self.port, storage=storage))
        if port_open("127.0.0.1", self.port):
            raise StackError(f"port {self.port} is taken: cannot start Radicale")
        progress(f"starting Radicale on {self.url}")
        argv = [sys.executable, "-m", "radicale", "--config", str(self.config)]
        process = self._process = spawn(argv, self.log, cwd=self.dir)
        self.pid_file.write(process.pid)
        logger.info("radicale started pid=%s port=%s", process.pid, self.port)

        def died() -> str | None:
            if process.poll() is None:
                return None
            self.pid_file.path.unlink(missing_ok=True)
            return f"Radicale exited with code {process.returncode}:\n{log_tail(self.log)}"

        if not poll_until(self.is_up, timeout=START_TIMEOUT, interval=0.1, abort=died):
            self.stop()
            raise StackError(
                f"Radicale did not answer within {START_TIMEOUT:.0f}s:\n{self._log_tails()}"
            )

    def _log_tails(self) -> str:
        return f"--- {self.log}\n{log_tail(self.log)}"

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.pid_file.marker, STOP_TIMEOUT)
            logger.info("radicale stopped pid=%s", pid)
        self.pid_file.path.unlink(missing_ok=True)
        if self._process is not None:
            self._process.wait(timeout=5)  # reap our own child: gone is gone
            self._process = None
