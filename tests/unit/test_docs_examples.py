"""Every example in the docs runs: rules validate, events parse, CLI output matches, code runs.

Blocks that need Kafka or Postgres (`<!-- needs: stack -->`) run in
tests/integration/test_docs_examples.py; here their commands are only checked to exist.
How blocks are marked: tests/fixtures/doc_examples.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from automation_core.event_json import parse_stage_changed
from automation_core.rule_errors import RulesInvalid
from automation_core.rules_file import validate_rules_file
from crm_automation.cli import app
from crm_automation.stack.registry import CCOMPAT_PATH
from runtime import codec, topics
from tests.fixtures.doc_examples import (
    DOCUMENTS,
    LANGUAGES,
    ROOT,
    Block,
    all_blocks,
    blocks,
    console_steps,
    files_of,
)


def _params(lang: str, *, stack: bool | None = None) -> list[Any]:
    return [
        pytest.param(b, id=b.id)
        for b in all_blocks(lang)
        if stack is None or b.needs_stack == stack
    ]


@pytest.fixture
def doc_dir(tmp_path: Path) -> Iterator[Path]:
    """A working directory with the repository's schemas, as the docs assume."""
    (tmp_path / "schemas").symlink_to(ROOT / "schemas")
    (tmp_path / "config").symlink_to(ROOT / "config")
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(previous)


def run_python_blocks(doc: str, *, include_stack: bool, replace: dict[str, str]) -> dict[str, Any]:
    """Execute the doc's python blocks in order in one namespace (cwd: the caller's)."""
    namespace: dict[str, Any] = {"__name__": f"docs_{doc.replace('.', '_').replace('-', '_')}"}
    for block in blocks(doc):
        if block.lang != "python" or block.needs_registry:  # run on their own, with a registry
            continue
        if block.needs_stack and not include_stack:
            continue
        run_block(block, namespace, replace)
    return namespace


def run_block(block: Block, namespace: dict[str, Any], replace: dict[str, str]) -> None:
    """Execute one python block in `namespace`, with the `replace` substitutions."""
    source = block.text
    for old, new in replace.items():
        source = source.replace(old, new)
    exec(compile(source, block.id, "exec"), namespace)  # noqa: S102 - our own docs


def test_the_documents_exist_and_have_examples() -> None:
    for doc in DOCUMENTS:
        assert blocks(doc), f"docs/{doc} has no example"
    for lang in ("yaml", "jsonl", "python", "console", "sql", "sh", "java", "go", "ksql"):
        assert all_blocks(lang), f"no {lang} example in the docs"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in all_blocks()])
def test_every_block_has_a_language_a_test_runs(block: Block) -> None:
    assert block.lang in LANGUAGES, f"{block.id}: unknown language {block.lang!r}"
    assert set(block.markers) <= {"file", "needs", "exit", "invalid"}, block.markers
    if block.lang == "text":  # diagrams and byte layouts, not examples
        assert "crm-automation " not in block.text and "{" not in block.text, block.id


@pytest.mark.parametrize("block", _params("yaml"))
def test_yaml_examples_are_valid_rules_files(block: Block) -> None:
    if "invalid" in block.markers:
        with pytest.raises(RulesInvalid):
            validate_rules_file(block.text)
    else:
        validated = validate_rules_file(block.text)
        assert validated.rules or validated.pipelines or validated.calendars


def test_the_rule_authors_guide_shows_the_shipped_example_rules() -> None:
    shipped = (ROOT / "config" / "rules.example.yaml").read_text()
    assert files_of("rule-authors.md")["rules.yaml"] == shipped


@pytest.mark.parametrize("block", _params("json") + _params("jsonl"))
def test_json_examples_are_valid_stage_changes(block: Block) -> None:
    documents = [block.text] if block.lang == "json" else block.text.splitlines()
    for text in documents:
        event = parse_stage_changed(json.loads(text))
        assert event.key.startswith(("DEAL:", "LEAD:"))


@pytest.mark.parametrize("block", _params("console", stack=False))
def test_console_examples_print_what_the_docs_show(block: Block, doc_dir: Path) -> None:
    for name, text in files_of(block.doc).items():
        (doc_dir / name).write_text(text)
    expected_exit = int(block.markers.get("exit", "0"))
    for step in console_steps(block):
        result = CliRunner().invoke(app, step.args)
        assert result.exit_code == expected_exit, result.output
        assert result.output.rstrip("\n").splitlines() == step.expected, (
            f"{block.id}: crm-automation {' '.join(step.args)}"
        )


@pytest.mark.parametrize("block", _params("console", stack=True))
def test_console_examples_that_need_the_stack_are_real_commands(block: Block) -> None:
    for step in console_steps(block):
        result = CliRunner().invoke(app, [*step.args, "--help"])
        assert result.exit_code == 0, f"crm-automation {' '.join(step.args)}: {result.output}"


def test_a_console_example_with_wrong_output_is_caught(doc_dir: Path) -> None:
    (doc_dir / "rules.yaml").write_text(files_of("rule-authors.md")["rules.yaml"])
    result = CliRunner().invoke(app, ["rules", "validate", "rules.yaml"])
    assert result.output.splitlines() != ["OK: 3 pipeline(s), 1 working-time calendar(s)"]


@pytest.mark.parametrize(
    "doc", [d for d in DOCUMENTS if any(b.lang == "python" for b in blocks(d))]
)
def test_python_examples_run(doc: str, doc_dir: Path) -> None:
    run_python_blocks(doc, include_stack=False, replace={})


def test_the_python_producer_example_encodes_what_the_codec_decodes(doc_dir: Path) -> None:
    namespace = run_python_blocks("producers.md", include_stack=False, replace={})
    json_event = next(b for b in blocks("producers.md") if b.lang == "json").text
    assert codec.decode(namespace["value"]) == parse_stage_changed(json.loads(json_event))
    assert namespace["key"] == "DEAL:4711"


def test_the_go_schema_has_the_stage_changed_fingerprint(doc_dir: Path) -> None:
    from fastavro.schema import parse_schema, to_parsing_canonical_form

    run_python_blocks("producers.md", include_stack=False, replace={})
    schema = parse_schema(json.loads((doc_dir / "StageChanged.avsc").read_text()))
    fingerprint = codec.crc64_avro_fingerprint(to_parsing_canonical_form(schema))
    assert fingerprint == codec.fingerprints()["StageChanged"]


@pytest.mark.parametrize("block", _params("java") + _params("go"))
def test_java_and_go_examples_name_real_schemas_and_fingerprints(block: Block) -> None:
    fingerprint = codec.fingerprints()["StageChanged"]
    as_java_long = int.from_bytes(fingerprint, "little", signed=True)
    as_go_uint64 = int.from_bytes(fingerprint, "little", signed=False)
    if block.lang == "java":
        assert f"{as_java_long}L" in block.text
        for name in re.findall(r'"crm\.automation\." \+ name \+ "\.avsc"', block.text):
            assert name
        for name in re.findall(r"List\.of\(([^)]*)\)", block.text)[0].replace('"', "").split(","):
            assert (ROOT / "schemas" / "avro" / f"crm.automation.{name.strip()}.avsc").exists()
    else:
        assert f"{as_go_uint64:#x}" in block.text
    for path in re.findall(r"schemas/avro/[\w.]+\.avsc", block.text):
        assert (ROOT / path).exists(), path
    for key in ("DEAL:4711", "crm.stage-changes", "murmur2" if block.lang == "go" else "acks"):
        assert key in block.text


@pytest.mark.parametrize("block", _params("sh"))
def test_shell_examples_use_real_commands_and_services(block: Block) -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for line in block.text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if words[0] == "crm-automation":
            result = CliRunner().invoke(app, [*words[1:], "--help"])
            assert result.exit_code == 0, line
        elif words[:2] == ["docker", "compose"]:
            assert words[2] in {"up", "down", "logs", "ps", "restart", "run", "exec"}, line
            named = [w for w in words[3:] if not w.startswith("-")]
            assert set(named) <= set(services), line
        elif words[0] == "kubectl":
            assert words[1] in {"apply", "create", "delete", "get", "rollout"}, line
            if "-k" in words:
                assert (ROOT / words[words.index("-k") + 1] / "kustomization.yaml").exists()
        elif words[0] == "kcat":
            _assert_stock_tool_reads_our_topics(block, words[words.index("-t") + 1])
            assert "-s" in words and words[words.index("-s") + 1] == "value=avro", line
            assert words[words.index("-r") + 1].endswith(CCOMPAT_PATH), line
        else:
            assert words[0] in {"pg_dump", "pg_restore", "psql", "export"}, line


_CONTRACT_TOPICS = {
    topics.STAGE_CHANGES: "StageChanged",
    topics.ACTIONS: "Action",
    topics.EXECUTIONS: "Execution",
    topics.TIMERS: "TimerCommand",
}


def _assert_stock_tool_reads_our_topics(block: Block, topic: str, *columns: str) -> None:
    """`topic` is a contract topic, and every column a field of the record it carries."""
    assert topic in _CONTRACT_TOPICS, f"{block.id}: {topic} is not a contract topic"
    schema = json.loads(
        (ROOT / "schemas" / "avro" / f"crm.automation.{_CONTRACT_TOPICS[topic]}.avsc").read_text()
    )
    fields = {field["name"] for field in schema["fields"]}
    assert set(columns) <= fields, f"{block.id}: not fields of {topic}: {set(columns) - fields}"


@pytest.mark.parametrize("block", _params("ksql") + _params("flink-sql") + _params("properties"))
def test_stock_tool_examples_read_our_topics_in_the_registry_format(block: Block) -> None:
    text = block.text
    if block.lang == "ksql":
        (topic,) = re.findall(r"KAFKA_TOPIC='([^']+)'", text)
        assert "VALUE_FORMAT='AVRO'" in text, block.id
        selected = re.findall(r"SELECT (.+?) FROM", text, re.S)
        columns = [c.strip() for part in selected for c in part.split(",") if "(" not in c]
    elif block.lang == "flink-sql":
        (topic,) = re.findall(r"'topic' = '([^']+)'", text)
        assert "'value.format' = 'avro-confluent'" in text, block.id
        assert re.search(rf"'value.avro-confluent.url' = '[^']+{CCOMPAT_PATH}'", text), block.id
        table = text[text.index("(") + 1 : text.index(") WITH")]
        columns = [line.split()[0] for line in table.strip().splitlines()]
    else:
        config = dict(line.split("=", 1) for line in text.splitlines() if line.strip())
        topic = config["topics"]
        assert config["value.converter"] == "io.confluent.connect.avro.AvroConverter"
        assert config["value.converter.schema.registry.url"].endswith(CCOMPAT_PATH)
        columns = [c for c in config.get("pk.fields", "").split(",") if c]
    _assert_stock_tool_reads_our_topics(block, topic, *columns)


def test_the_analysts_decoder_reads_the_engines_actions_and_executions(doc_dir: Path) -> None:
    from automation_core.evaluate import rule_index_from
    from automation_core.simulate import simulate

    namespace = run_python_blocks("analysts.md", include_stack=False, replace={})
    rules = validate_rules_file(files_of("rule-authors.md")["rules.yaml"])
    events = [
        parse_stage_changed(json.loads(line))
        for line in files_of("rule-authors.md")["events.jsonl"].splitlines()
    ]
    lines = [
        namespace["describe"](*namespace["decode"](codec.encode(record)))
        for step in simulate(events, rule_index_from(rules.rules))
        for record in (
            *step.decision.actions,
            *step.decision.completions,
            *step.decision.executions,
        )
    ]
    assert lines == [
        "DEAL:4711 call-client: PlanActivity (immediate)",
        "DEAL:4711 call-client: fired",
        "DEAL:4712 call-client: skipped",
        "DEAL:4711 copy-to-installation: CopyDeal (immediate)",
        "DEAL:4711 (stage exit): CompleteActivities (immediate)",
        "DEAL:4711 copy-to-installation: fired",
        "DEAL:4711 renewal-lead: scheduled due 2027-05-26 09:00",
    ]
    for quoted in re.findall(r"`(DEAL:\d+ [^`]+)`", (ROOT / "docs" / "analysts.md").read_text()):
        assert quoted in lines, quoted
