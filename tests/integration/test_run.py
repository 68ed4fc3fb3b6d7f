"""`crm-automation run --demo`: the README's main job, on the session's services."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runtime.settings import Settings
from tests.integration.support import CLI, cli_env, inherited_fds

pytestmark = pytest.mark.integration


def test_run_demo_shows_the_seed_examples_read_back_and_stops_cleanly(
    settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(settings, tmp_path)
    result = subprocess.run(
        [CLI, "run", "--demo", "--duration", "8"],
        env=env,
        pass_fds=inherited_fds(env),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "applied 3 rules" in out
    assert "(installation) | installation | NEW | u-9 | 12000.00" in out
    assert "Call the client | " in out and "14:00 Europe/Berlin | u-7 | completed" in out
    assert "calendar of u-7 (CalDAV): 1 event(s)" in out
    assert "| renewal-lead | " in out
    assert "demo complete" in out
    assert "engine exit 0, scheduler exit 0, sink-postgres exit 0, sink-calendar exit 0" in out


def test_run_stops_the_servers_it_started_and_keeps_their_data_for_the_next_run(
    settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(settings, tmp_path)
    for configured in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "CALDAV_URL"):
        del env[f"CRM_AUTOMATION_{configured}"]  # a stack of its own, under tmp_path

    def run() -> str:
        result = subprocess.run(
            [CLI, "run", "--duration", "1"],
            env=env, pass_fds=inherited_fds(env), capture_output=True, text=True,
            timeout=240, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    first = run()
    status = subprocess.run(
        [CLI, "stack", "status", "--json"], env=env, capture_output=True, text=True, check=False
    )
    second = run()

    assert "stopped the servers this run started: caldav, kafka, postgres" in first
    assert status.returncode == 1  # nothing of that home answers between the runs
    assert '"kafka_up": false' in status.stdout and '"postgres_up": false' in status.stdout
    assert "applied 3 rules" in first and "3 rules already published" in second
