"""Detached server processes: pid files, liveness, remembered ports, clean stops."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Receives one-line progress messages (e.g. "fetching Kafka jars") while the stack starts."""


class StackError(RuntimeError):
    """A component of the local stack could not be prepared, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PortBook:
    """Ports picked on a component's first start, kept in a JSON file so restarts reuse them.

    The stack starts its servers in parallel threads, and several CLI processes may share a
    home: every read-modify-write of the file holds an exclusive lock (a thread lock and an
    `flock` on a lock file beside it), so no pick overwrites another's.
    """

    _thread_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def port(self, name: str, configured: int = 0) -> int:
        """The configured port, else the remembered one, else a new free one (remembered)."""
        if configured:
            return configured
        with self._locked():
            ports = self._read()
            if name not in ports:
                port = free_port()
                while port in ports.values():  # two quick picks may coincide
                    port = free_port()
                ports[name] = port
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
                with os.fdopen(fd, "w") as out:
                    out.write(json.dumps(ports, indent=2, sort_keys=True))
                os.replace(tmp, self.path)
            return ports[name]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        data: dict[str, int] = json.loads(self.path.read_text())
        return data


def process_alive(pid: int, marker: str | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, on Linux, has `marker` in its command line.

    The marker guards against a stale pid file whose pid now belongs to another process.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs (macOS): the signal check is all we have
    try:
        status = dict(
            line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line
        )
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    # A zombie leader with other threads still running is a JVM (or Python) shutting down,
    # not a dead process: only a single-threaded zombie is gone.
    state = status.get("State", "").split()[0:1]
    threads = int(status.get("Threads", "1").strip() or 1)
    if state and state[0] in ("Z", "X") and threads <= 1:
        return False
    return marker is None or marker in cmdline


class PidFile:
    """The pid of a detached server process we started, with its command-line marker."""

    def __init__(self, path: Path, marker: str) -> None:
        self.path = path
        self.marker = marker

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def running_pid(self) -> int | None:
        """The pid if that process is still ours and alive; a stale file is removed."""
        pid = self.read()
        if pid is None:
            return None
        if process_alive(pid, self.marker):
            return pid
        logger.info("stale pid file path=%s pid=%s", self.path, pid)
        self.path.unlink(missing_ok=True)
        return None


def spawn(
    argv: Sequence[str], log_path: Path, *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (it outlives the CLI), output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv is built by us, never from user text
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(pid: int, marker: str, timeout: float) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL; returns when the process is gone."""
    if not process_alive(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    if wait_until_gone(pid, marker, timeout):
        return
    logger.warning("pid=%s did not stop within %.0fs, killing it", pid, timeout)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_until_gone(pid, marker, 10.0):
        raise StackError(f"process {pid} survived SIGKILL")


def wait_until_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid, marker):
        _reap(pid)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _reap(pid: int) -> None:
    # A server started by this very process (e.g. a test session) becomes a zombie when it
    # exits; collecting it lets the pid disappear.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def poll_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.2,
    abort: Callable[[], str | None] = lambda: None,
) -> bool:
    """Poll `condition` until it holds (True) or the deadline passes (False).

    `abort` returns a reason to give up early (e.g. the server process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        reason = abort()
        if reason is not None:
            raise StackError(reason)
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])
