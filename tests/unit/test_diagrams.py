"""docs/img/architecture.svg is what scripts/architecture_diagram.py draws, and names what runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from crm_automation.supervisor import processors
from runtime import topics
from runtime.settings import Settings

ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "docs" / "img" / "architecture.svg"


def load_diagram() -> ModuleType:
    """scripts/ is not a package: load the script by path."""
    path = ROOT / "scripts" / "architecture_diagram.py"
    spec = importlib.util.spec_from_file_location("architecture_diagram", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("architecture_diagram", module)
    spec.loader.exec_module(module)
    return module


def test_committed_architecture_svg_is_what_the_script_draws(tmp_path: Path) -> None:
    fresh = load_diagram().render(tmp_path / "architecture.svg").read_bytes()

    assert fresh == COMMITTED.read_bytes(), (
        "docs/img/architecture.svg differs from what scripts/architecture_diagram.py draws:"
        " run make diagrams and commit the result"
    )


def test_architecture_svg_names_every_topic_and_every_process_run_starts() -> None:
    svg = COMMITTED.read_text()
    settings = Settings(webhook_allowed_hosts=["hooks.example.com"])
    # The supervisor's names are "sink-postgres"; the diagram says "sink postgres".
    started = [p.name.replace("-", " ") for p in processors(settings)]
    contract_topics = [
        topics.STAGE_CHANGES,
        topics.RULES,
        topics.TIMERS,
        topics.ACTIONS,
        topics.EXECUTIONS,
        topics.DLQ,
    ]

    assert [name for name in started if name not in svg] == []
    assert [name for name in contract_topics if name not in svg] == []
    assert "PostgreSQL" in svg and "CalDAV" in svg and "supervisor" in svg


def test_the_readme_and_the_architecture_doc_show_the_diagram() -> None:
    for doc, link in (
        ("README.md", "docs/img/architecture.svg"),
        ("docs/architecture.md", "img/architecture.svg"),
    ):
        assert f"]({link})" in (ROOT / doc).read_text(), doc
