"""Apicurio Registry, the local schema registry: fetched once from Maven Central, run on
Java 17 with in-memory storage, its Confluent-compatible API at `/apis/ccompat/v7`."""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
import tarfile
import time
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlsplit

from crm_automation.stack import kafka_jars
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

START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
CCOMPAT_PATH = "/apis/ccompat/v7"
_COMPLETE = ".complete"


def registry_answers(url: str, timeout: float = 3.0) -> bool:
    """Whether a Confluent-compatible registry at `url` lists its subjects."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request("GET", parts.path.rstrip("/") + "/subjects")
        return conn.getresponse().status == 200
    except (OSError, HTTPException):
        return False
    finally:
        conn.close()


def apicurio_dist(cache_dir: Path, version: str, progress: Progress = lambda _: None) -> Path:
    """The unpacked `apicurio-registry-app` `version` (runner jar + lib/), fetched with Maven
    once. Its parent POM is not on Maven Central, so the artifact is resolved alone
    (`dependency:get -Dtransitive=false`); a marker file says the unpacking finished."""
    dist = cache_dir / f"apicurio-registry-{version}"
    marker = dist / _COMPLETE
    if marker.exists():
        return dist
    dist.mkdir(parents=True, exist_ok=True)
    with (dist / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            _fetch(dist, version, progress)
            marker.write_text(f"{version}\n")
    return dist


def _fetch(dist: Path, version: str, progress: Progress) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "`mvn` (Apache Maven) not found on PATH: it fetches Apicurio Registry once into "
            f"{dist}; install Maven, or set CRM_AUTOMATION_SCHEMA_REGISTRY_URL"
        )
    artifact = f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
    progress(f"fetching Apicurio Registry {version} (~110 MB) from Maven Central")
    started = time.monotonic()
    argv = [
        mvn, "-B", "-q", "-Dstyle.color=never",
        "org.apache.maven.plugins:maven-dependency-plugin:2.8:get",
        "-Dtransitive=false", f"-Dartifact={artifact}", f"-Ddest={dist / 'app.tar.gz'}",
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603
        argv, cwd=dist, capture_output=True, text=True, check=False, timeout=900
    )
    archive = dist / "app.tar.gz"
    if result.returncode != 0 or not archive.exists():
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise StackError(
            f"fetching {artifact} with Maven failed (exit {result.returncode}):\n"
            + "\n".join(output)
        )
    with tarfile.open(archive) as tar:
        tar.extractall(dist, filter="data")
    archive.unlink()
    logger.info("fetched apicurio_version=%s in %.1fs", version, time.monotonic() - started)


class RegistryServer:
    """Apicurio Registry as a detached Java process with a pid file."""

    name = "registry"

    def __init__(self, settings: Settings, ports: PortBook) -> None:
        self.settings = settings
        self.ports = ports
        self.dir = settings.home / "registry"
        self.log = settings.home / "logs" / "registry.log"
        self._process: subprocess.Popen[bytes] | None = None
        # The marker: the working directory's path is in no other process's command line.
        self.pid_file = PidFile(
            settings.home / "run" / "registry.pid", marker=f"-Dcrm.automation.home={self.dir}"
        )

    @property
    def port(self) -> int:
        return self.ports.port("registry", self.settings.schema_registry_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    def pid(self) -> int | None:
        return self.pid_file.running_pid()

    def is_up(self) -> bool:
        return port_open("127.0.0.1", self.port) and registry_answers(self.url)

    def start(self, progress: Progress = lambda _: None) -> None:
        if self.pid() is not None:
            if not poll_until(self.is_up, timeout=START_TIMEOUT, interval=0.3):
                raise StackError(f"Apicurio Registry runs but does not answer:\n{self._tail()}")
            return
        java = kafka_jars.java_executable()
        dist = apicurio_dist(self.settings.cache_dir, self.settings.apicurio_version, progress)
        (runner,) = dist.glob("apicurio-registry-app-*-runner.jar")
        if port_open("127.0.0.1", self.port):
            raise StackError(f"port {self.port} is taken: cannot start Apicurio Registry")
        self.dir.mkdir(parents=True, exist_ok=True)
        progress(f"starting Apicurio Registry on {self.url}")
        argv = [
            java, "-Xms64m", "-Xmx384m", "-Djava.awt.headless=true",
            self.pid_file.marker,
            "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
            "-jar", str(runner),
        ]  # fmt: skip
        process = self._process = spawn(argv, self.log, cwd=self.dir)
        self.pid_file.write(process.pid)
        logger.info("registry started pid=%s port=%s", process.pid, self.port)

        def died() -> str | None:
            if process.poll() is None:
                return None
            self.pid_file.path.unlink(missing_ok=True)
            return f"Apicurio Registry exited with code {process.returncode}:\n{self._tail()}"

        if not poll_until(self.is_up, timeout=START_TIMEOUT, interval=0.2, abort=died):
            self.stop()
            raise StackError(
                f"Apicurio Registry did not answer within {START_TIMEOUT:.0f}s:\n{self._tail()}"
            )

    def _tail(self) -> str:
        return f"--- {self.log}\n{log_tail(self.log)}"

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.pid_file.marker, STOP_TIMEOUT)
            logger.info("registry stopped pid=%s", pid)
        self.pid_file.path.unlink(missing_ok=True)
        if self._process is not None:
            self._process.wait(timeout=5)
            self._process = None
