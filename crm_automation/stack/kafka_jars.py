"""The Apache Kafka broker's jars: fetched once from Maven Central into the cache directory."""

from __future__ import annotations

import fcntl
import logging
import re
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

from crm_automation.stack.processes import Progress, StackError

logger = logging.getLogger(__name__)

MIN_JAVA = 17
_COMPLETE = ".complete"


def java_executable() -> str:
    """The `java` to run Kafka with; raises StackError when missing or older than 17."""
    java = shutil.which("java")
    if java is None:
        raise StackError(f"`java` not found on PATH: the local Kafka needs Java {MIN_JAVA}+")
    out = subprocess.run(  # noqa: S603
        [java, "-version"], capture_output=True, text=True, check=False, timeout=30
    )
    major = java_major_version(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA:
        raise StackError(
            f"Kafka needs Java {MIN_JAVA}+, `{java} -version` says: "
            f"{(out.stderr or out.stdout).strip().splitlines()[:1]}"
        )
    return java


def java_major_version(version_output: str) -> int | None:
    """17 from `openjdk version "17.0.15"`, 8 from `java version "1.8.0_392"`."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def kafka_libs(cache_dir: Path, version: str, progress: Progress = lambda _: None) -> Path:
    """The directory holding Kafka `version`'s jars, fetched with Maven if not complete yet.

    A marker file is written after a successful fetch; without it (an interrupted fetch)
    the directory is emptied and fetched again. A file lock keeps concurrent fetches apart.
    """
    dist = cache_dir / f"kafka-{version}"
    libs = dist / "libs"
    marker = dist / _COMPLETE
    if marker.exists():
        return libs
    dist.mkdir(parents=True, exist_ok=True)
    with (dist / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            _fetch(dist, libs, version, progress)
            marker.write_text(f"{version}\n")
    return libs


def _fetch(dist: Path, libs: Path, version: str, progress: Progress) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "`mvn` (Apache Maven) not found on PATH: it fetches the Kafka jars once into "
            f"{dist}; install Maven, or set CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS"
        )
    if libs.exists():
        shutil.rmtree(libs)  # a fetch that did not finish
    pom = dist / "pom.xml"
    pom.write_bytes(resources.files("crm_automation.stack").joinpath("pom.xml").read_bytes())
    progress(f"fetching Kafka {version} jars from Maven Central into {libs}")
    started = time.monotonic()
    argv = [
        mvn, "-B", "-q", "-Dstyle.color=never", "dependency:copy-dependencies",
        f"-Dkafka.version={version}", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        "-f", str(pom),
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603
        argv, cwd=dist, capture_output=True, text=True, check=False, timeout=900
    )
    if result.returncode != 0 or not any(libs.glob(f"kafka_2.13-{version}.jar")):
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise StackError(
            f"fetching Kafka {version} with Maven failed (exit {result.returncode}):\n"
            + "\n".join(output)
        )
    jars = len(list(libs.glob("*.jar")))
    logger.info(
        "fetched kafka_version=%s jars=%s in %.1fs", version, jars, time.monotonic() - started
    )
    progress(f"fetched {jars} jars in {time.monotonic() - started:.1f}s")
