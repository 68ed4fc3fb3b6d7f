"""`rules apply` says what it published only once Kafka confirmed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import topics
from runtime.settings import Settings
from tests.integration.support import run_cli, set_max_message_bytes

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
