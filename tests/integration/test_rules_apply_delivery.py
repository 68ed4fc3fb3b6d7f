"""`rules apply` and `rules delete` say what they published only once Kafka confirmed it."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from crm_automation import progress
from runtime import topics
from runtime.settings import Settings
from tests.integration.support import CLI, cli_env, run_cli, set_max_message_bytes

pytestmark = pytest.mark.integration

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
  - {id: leads, entity_type: LEAD, stages: [NEW]}
rules:
  - id: renewal
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 30d}
    action: {type: create_lead, title: "Renew"}
"""


def test_a_refused_publish_prints_an_error_and_no_published_line(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    set_max_message_bytes(settings, topics.RULES, 64)  # every rule record is larger

    refused = run_cli(settings, tmp_path, "rules", "apply", str(path))

    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "publish" not in refused.stdout
    assert "error: Kafka did not confirm the rules" in refused.stderr

    set_max_message_bytes(settings, topics.RULES, 1_048_588)
    applied = run_cli(settings, tmp_path, "rules", "apply", str(path))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[:3] == [
        "publish pipeline sales",
        "publish pipeline leads",
        "publish rule renewal",
    ]


def _many_rules(count: int) -> str:
    rules = "".join(
        f"""  - id: renewal-{n}
    trigger: {{entity_type: DEAL, pipeline: sales, stage: WON}}
    when: {{delay: 30d}}
    action: {{type: create_lead, title: "Renew"}}
"""
        for n in range(count)
    )
    return RULES.split("rules:")[0] + "rules:\n" + rules


def _run_with_stderr_on_a_terminal(
    settings: Settings, tmp_path: Path, *args: str
) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal: (exit status, stdout, what the
    terminal showed)."""
    main, terminal = pty.openpty()
    with (tmp_path / "stdout.txt").open("w+") as stdout:
        process = subprocess.Popen(
            [CLI, *args], env=cli_env(settings, tmp_path), stdout=stdout, stderr=terminal
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            shown += chunk
        os.close(main)
        status = process.wait(timeout=120)
        stdout.seek(0)
        return status, stdout.read(), shown.decode(errors="replace")


def test_a_large_apply_on_a_terminal_shows_progress_up_to_every_record_confirmed(
    settings: Settings, tmp_path: Path
) -> None:
    count = progress.SHOWN_FROM + 100
    path = tmp_path / "rules.yaml"
    path.write_text(_many_rules(count))
    records = count + 2  # and the two pipelines

    status, stdout, shown = _run_with_stderr_on_a_terminal(
        settings, tmp_path, "rules", "apply", str(path)
    )

    assert status == 0, shown
    assert "records confirmed by Kafka" in shown
    assert f"{records}/{records}" in shown
    assert stdout.splitlines()[-1] == f"{records} to publish, 0 to delete, 0 unchanged"

    # Redirected, the same size of publish draws no bar: stderr stays for messages.
    path.write_text(_many_rules(count).replace('"Renew"', '"Renew soon"'))
    redirected = run_cli(settings, tmp_path, "rules", "apply", str(path))
    assert redirected.returncode == 0, redirected.stderr
    assert "confirmed by Kafka" not in redirected.stderr


def test_delete_names_each_deleted_rule_and_its_pending_timers(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_many_rules(2))
    assert run_cli(settings, tmp_path, "rules", "apply", str(path)).returncode == 0

    deleted = run_cli(settings, tmp_path, "rules", "delete", "renewal-0", "renewal-1")

    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.splitlines() == [
        "deleted rule renewal-0",
        "deleted rule renewal-1",
        "rule renewal-0: 0 pending timer(s) will be cancelled (rule_cancelled)",
        "rule renewal-1: 0 pending timer(s) will be cancelled (rule_cancelled)",
    ]
    listed = run_cli(settings, tmp_path, "rules", "list")
    assert "renewal-" not in listed.stdout
    again = run_cli(settings, tmp_path, "rules", "delete", "renewal-0")
    assert again.returncode == 1
    assert "error: no published rule 'renewal-0'" in again.stderr
