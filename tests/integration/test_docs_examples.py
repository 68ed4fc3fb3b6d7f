"""The docs' examples that need Kafka or Postgres, run against the real stack.

The producer snippet's event is read back by the CLI, the analysts' consumer reads what
the engine's records look like on the topics, their SQL runs on rows the Postgres sink
wrote, and the operators' commands (init steps, backup and restore) succeed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from automation_core.evaluate import rule_index_from
from automation_core.event_json import parse_stage_changed, stage_changed_to_json
from automation_core.model import Execution
from automation_core.rules_file import validate_rules_file
from automation_core.simulate import simulate
from crm_automation.stack.postgres import postgres_bin
from runtime import codec, kafka_clients, schema_registry, topics
from runtime.settings import Settings
from tests.fixtures.doc_examples import ROOT, Block, blocks, console_steps, files_of
from tests.helpers import wait_for
from tests.integration.support import CLI, cli_env, start_cli, stop_process
from tests.unit.test_docs_examples import run_block, run_python_blocks

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def doc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory like a checkout: schemas/ and config/ of the repository."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "schemas").symlink_to(ROOT / "schemas")
    (work / "config").symlink_to(ROOT / "config")
    monkeypatch.chdir(work)
    yield work


def _stack_blocks(doc: str, lang: str) -> list[Block]:
    return [b for b in blocks(doc) if b.lang == lang and b.needs_stack]


def _run(s: Settings, cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        cwd=cwd,
        env=cli_env(s, cwd.parent),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _run_console_block(s: Settings, cwd: Path, block: Block) -> list[str]:
    """Run each step; compare with the output the block shows, if it shows any."""
    outputs = []
    for step in console_steps(block):
        result = _run(s, cwd, step.args)
        assert result.returncode == 0, f"{block.id} {step.args}: {result.stdout}{result.stderr}"
        if step.expected:
            assert result.stdout.splitlines() == step.expected, block.id
        outputs.append(result.stdout)
    return outputs


def _seed_records() -> list[codec.TopLevel]:
    """The records the engine emits for the rule authors' seed example, in order."""
    rules = validate_rules_file(files_of("rule-authors.md")["rules.yaml"])
    events = [
        parse_stage_changed(json.loads(line))
        for line in files_of("rule-authors.md")["events.jsonl"].splitlines()
    ]
    return [
        record
        for step in simulate(events, rule_index_from(rules.rules))
        for record in (
            *step.decision.actions,
            *step.decision.completions,
            *step.decision.executions,
        )
    ]


def _produce_seed_records(s: Settings) -> int:
    producer = Producer(kafka_clients.producer_config(s))
    records = _seed_records()
    for record in records:
        topic = topics.EXECUTIONS if type(record).__name__ == "Execution" else topics.ACTIONS
        producer.produce(s.topic(topic), key=record.item_key.encode(), value=codec.encode(record))
    assert producer.flush(30) == 0
    return len(records)


def test_the_python_producer_example_sends_an_event_the_cli_reads_back(
    settings: Settings, doc_dir: Path
) -> None:
    topic = settings.topic(topics.STAGE_CHANGES)
    run_python_blocks(
        "producers.md",
        include_stack=True,
        replace={
            '"localhost:9092"': repr(settings.kafka_bootstrap_servers),
            '"crm.stage-changes"': repr(topic),
        },
    )
    tail = _stack_blocks("producers.md", "console")[-1]
    (output,) = _run_console_block(settings, doc_dir, tail)
    (line,) = output.splitlines()
    message = json.loads(line)
    json_event = next(b for b in blocks("producers.md") if b.lang == "json").text
    assert message["topic"] == topic
    assert message["key"] == "DEAL:4711"
    assert message["schema"] == "StageChanged"
    expected = stage_changed_to_json(parse_stage_changed(json.loads(json_event)))
    assert parse_stage_changed(message["value"]) == parse_stage_changed(expected)


def test_the_cli_producer_example_produces_the_documented_events(
    settings: Settings, doc_dir: Path
) -> None:
    for name, text in files_of("producers.md").items():
        (doc_dir / name).write_text(text)
    produce = _stack_blocks("producers.md", "console")[0]
    _run_console_block(settings, doc_dir, produce)  # compares "produced 2, invalid 0"
    result = _run(
        settings,
        doc_dir,
        [
            "events",
            "tail",
            topics.STAGE_CHANGES,
            "--from-beginning",
            "--max",
            "2",
            "--timeout",
            "10",
        ],
    )
    keys = sorted(json.loads(line)["key"] for line in result.stdout.splitlines())
    assert keys == ["DEAL:4711", "DEAL:4712"]


def test_the_analysts_consumer_reads_actions_and_executions(
    settings: Settings, doc_dir: Path
) -> None:
    count = _produce_seed_records(settings)
    namespace = run_python_blocks(
        "analysts.md",
        include_stack=True,
        replace={
            '"localhost:9092"': repr(settings.kafka_bootstrap_servers),
            '"automation.actions"': repr(settings.topic(topics.ACTIONS)),
            '"automation.executions"': repr(settings.topic(topics.EXECUTIONS)),
            '"analytics-export"': repr(f"docs-test-{uuid.uuid4().hex[:8]}"),
        },
    )
    lines = namespace["lines"]
    assert len(lines) == count
    assert "DEAL:4711 copy-to-installation: CopyDeal (immediate)" in lines
    assert "DEAL:4711 renewal-lead: scheduled due 2027-05-26 09:00" in lines
    # One item's records on one topic arrive in the order they were written.
    assert [x for x in lines if x.startswith("DEAL:4711") and x.endswith("(immediate)")] == [
        "DEAL:4711 call-client: PlanActivity (immediate)",
        "DEAL:4711 copy-to-installation: CopyDeal (immediate)",
        "DEAL:4711 (stage exit): CompleteActivities (immediate)",
    ]
    for block in _stack_blocks("analysts.md", "console"):
        outputs = _run_console_block(settings, doc_dir, block)
        assert all(json.loads(line)["schema"] for out in outputs for line in out.splitlines())


def test_the_analysts_sql_runs_on_what_the_postgres_sink_wrote(
    settings: Settings, doc_dir: Path
) -> None:
    _produce_seed_records(settings)
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    sink = start_cli(settings, doc_dir.parent, "sink", "postgres")
    try:

        def landed() -> bool:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM executions),"
                    " (SELECT count(*) FROM activities WHERE status = 'completed')"
                ).fetchone()
            return row == (4, 1)

        wait_for(landed, timeout=60, what="the seed's records in Postgres")
    finally:
        assert stop_process(sink) == 0
    results = []
    with psycopg.connect(url) as conn:
        for block in _stack_blocks("analysts.md", "sql"):
            results.append(conn.execute(block.text).fetchall())
    by_item, _repeat_leads, copies, _open, completed, failures, _latency, pending = results
    assert [(rule, status) for _, rule, status, _, _ in by_item] == [
        ("call-client", "fired"),
        ("copy-to-installation", "fired"),
        ("renewal-lead", "scheduled"),
    ]
    assert [(c[0], c[1], c[4]) for c in copies] == [
        (
            "deal-680c80b86834ab7a6f5a9eb3f865cd03",
            "Maintenance Müller GmbH (installation)",
            "DEAL:4711",
        )
    ]
    assert [(c[0], c[1]) for c in completed] == [("DEAL:4711", "Call the client")]
    assert failures == []
    assert pending == []  # the scheduler, not this test, stores timers


def test_the_operators_init_steps_and_backup_commands_work(
    settings: Settings, doc_dir: Path
) -> None:
    (init,) = _stack_blocks("operations.md", "console")
    _run_console_block(settings, doc_dir, init)
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO executions (execution_key, rule_id, item_key, event_id, status,"
            " recorded_at) VALUES ('docs-backup', 'r-1', 'DEAL:1', 'evt-1', 'fired', now())"
        )
    backup = next(b for b in blocks("operations.md") if b.lang == "sh" and "pg_dump" in b.text)
    dump, restore = [line for line in backup.text.splitlines() if line.strip()]
    env = {
        **cli_env(settings, doc_dir.parent),
        "PATH": f"{postgres_bin()}{os.pathsep}{os.environ['PATH']}",
    }
    for line in (dump,):
        subprocess.run(["bash", "-c", line], cwd=doc_dir, env=env, check=True, timeout=120)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM executions WHERE execution_key = 'docs-backup'")
    subprocess.run(["bash", "-c", restore], cwd=doc_dir, env=env, check=True, timeout=120)
    with psycopg.connect(url) as conn:
        restored = conn.execute(
            "SELECT count(*) FROM executions WHERE execution_key = 'docs-backup'"
        ).fetchone()
    assert restored == (1,)
    rules = _run(settings, doc_dir, ["rules", "list"])
    assert rules.returncode == 0
    for rule_id in ("copy-to-installation", "renewal-lead", "call-client"):
        assert rule_id in rules.stdout


def test_the_rule_authors_publishing_commands_work(settings: Settings, doc_dir: Path) -> None:
    for name, text in files_of("rule-authors.md").items():
        (doc_dir / name).write_text(text)
    (publish,) = _stack_blocks("rule-authors.md", "console")
    dry_run, apply, listing = _run_console_block(settings, doc_dir, publish)
    assert "copy-to-installation" in dry_run
    assert "call-client" in apply
    assert all(rule in listing for rule in ("copy-to-installation", "renewal-lead", "call-client"))


def _tail_stage_changes(s: Settings, cwd: Path, count: int) -> list[dict[str, object]]:
    result = _run(
        s,
        cwd,
        [
            "events", "tail", topics.STAGE_CHANGES,
            "--from-beginning", "--max", str(count), "--timeout", "15",
        ],
    )  # fmt: skip
    return [json.loads(line) for line in result.stdout.splitlines()]


def _java_libraries(s: Settings) -> Path:
    """avro and kafka-clients for the Java example, fetched once with Maven into the cache."""
    libs = s.cache_dir / "docs-examples" / "java-libs"
    if not any(libs.glob("avro-*.jar")):
        subprocess.run(
            [
                "mvn", "-q", "-B", "-f", str(FIXTURES / "java" / "pom.xml"),
                "dependency:copy-dependencies", f"-DoutputDirectory={libs}",
            ],
            check=True,
            timeout=280,
        )  # fmt: skip
    return libs


def _replace_endpoints(text: str, s: Settings) -> str:
    return text.replace('"localhost:9092"', json.dumps(s.kafka_bootstrap_servers)).replace(
        '"crm.stage-changes"', json.dumps(s.topic(topics.STAGE_CHANGES))
    )


def test_the_java_and_python_producer_examples_put_an_item_on_the_same_partition(
    settings: Settings, doc_dir: Path
) -> None:
    libs = _java_libraries(settings)
    run_python_blocks(
        "producers.md",
        include_stack=True,
        replace={
            '"localhost:9092"': repr(settings.kafka_bootstrap_servers),
            '"crm.stage-changes"': repr(settings.topic(topics.STAGE_CHANGES)),
        },
    )
    (java,) = [b for b in blocks("producers.md") if b.lang == "java"]
    (doc_dir / "ProduceStageChanged.java").write_text(_replace_endpoints(java.text, settings))
    subprocess.run(
        ["java", "-cp", f"{libs}/*", "ProduceStageChanged.java"],
        cwd=doc_dir,
        check=True,
        timeout=120,
    )
    python_message, java_message = _tail_stage_changes(settings, doc_dir, 2)
    assert java_message["key"] == python_message["key"] == "DEAL:4711"
    assert java_message["partition"] == python_message["partition"]  # both murmur2
    assert java_message["schema"] == "StageChanged"
    value = java_message["value"]
    assert isinstance(value, dict)
    event = parse_stage_changed(value)
    assert (event.event_id, event.stage_id, str(event.item.amount)) == (
        "evt-1001",
        "WON",
        "12000.00",
    )


def _go_example(s: Settings, tmp_path: Path) -> Path:
    """The Go example built once per version of its source (Kafka address and topic from
    the environment), kept in the cache: linking librdkafka in takes half a minute."""
    go = shutil.which("go")
    assert go, "the Go toolchain is required to run the Go example of docs/producers.md"
    (example,) = [b for b in blocks("producers.md") if b.lang == "go"]
    source = example.text.replace('"localhost:9092"', 'os.Getenv("DOCS_BOOTSTRAP")').replace(
        '"crm.stage-changes"', 'os.Getenv("DOCS_TOPIC")'
    )
    assert source.count("os.Getenv") == 2
    files = {"main.go": source} | {
        name: (FIXTURES / "go" / name).read_text() for name in ("go.mod", "go.sum")
    }
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    binary = s.cache_dir / "docs-examples" / f"go-producer-{digest}"
    if not binary.exists():
        build = tmp_path / "go-example"
        build.mkdir()
        for name, text in files.items():
            (build / name).write_text(text)
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([go, "build", "-o", str(binary), "."], cwd=build, check=True, timeout=280)
    return binary


def test_the_go_producer_example_sends_an_event_the_engine_can_decode(
    settings: Settings, doc_dir: Path, tmp_path: Path
) -> None:
    binary = _go_example(settings, tmp_path)
    run_python_blocks("producers.md", include_stack=False, replace={})  # StageChanged.avsc
    subprocess.run(
        [str(binary)],
        cwd=doc_dir,
        env={
            **os.environ,
            "DOCS_BOOTSTRAP": settings.kafka_bootstrap_servers or "",
            "DOCS_TOPIC": settings.topic(topics.STAGE_CHANGES),
        },
        check=True,
        timeout=60,
    )
    (message,) = _tail_stage_changes(settings, doc_dir, 1)
    assert message["key"] == "DEAL:4711"
    assert message["schema"] == "StageChanged", message  # not unknown_fingerprint
    value = message["value"]
    assert isinstance(value, dict)
    event = parse_stage_changed(value)
    assert event.occurred_at.isoformat() == "2026-11-26T10:00:00+00:00"
    assert (event.previous_stage_id, event.item.currency) == ("NEGOTIATION", "EUR")


REGISTRY_IN_DOCS = '"http://localhost:8081/apis/ccompat/v7"'


def _run_registry_block(doc: str, namespace: dict[str, Any], replace: dict[str, str]) -> None:
    """The doc's one `needs: registry` python block, in `namespace`."""
    (block,) = [b for b in blocks(doc) if b.lang == "python" and b.needs_registry]
    run_block(block, namespace, replace)


def _register_schemas(s: Settings, url: str) -> None:
    """What every process does at start in the schema-registry wire format."""
    client = schema_registry.RegistryClient(s.model_copy(update={"schema_registry_url": url}))
    try:
        schema_registry.register_schemas(client, s)
    finally:
        client.close()


def test_the_registry_producer_example_writes_the_event_the_single_object_one_does(
    settings: Settings, doc_dir: Path, registry_url: str
) -> None:
    _register_schemas(settings, registry_url)
    topic = settings.topic(topics.STAGE_CHANGES)
    replace = {
        '"localhost:9092"': repr(settings.kafka_bootstrap_servers),
        '"crm.stage-changes"': repr(topic),
        REGISTRY_IN_DOCS: repr(registry_url),
    }
    namespace = run_python_blocks("producers.md", include_stack=True, replace=replace)
    _run_registry_block("producers.md", namespace, replace)

    tail = subprocess.run(
        [CLI, "events", "tail", topics.STAGE_CHANGES, "--from-beginning", "--max", "2",
         "--timeout", "10"],
        cwd=doc_dir,
        env=cli_env(settings, doc_dir.parent, CRM_AUTOMATION_SCHEMA_REGISTRY_URL=registry_url),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    single, framed = (json.loads(line) for line in tail.stdout.splitlines())
    assert (single["key"], single["schema"]) == ("DEAL:4711", "StageChanged")
    assert (framed["key"], framed["value"]) == (single["key"], single["value"])
    assert namespace["framed"][:1] == b"\x00" != namespace["value"][:1]


def test_the_analysts_stock_consumer_reads_what_a_registry_producer_wrote(
    settings: Settings, doc_dir: Path, registry_url: str
) -> None:
    _register_schemas(settings, registry_url)
    topic = settings.topic(topics.EXECUTIONS)
    executions = [r for r in _seed_records() if isinstance(r, Execution)]
    with SchemaRegistryClient({"url": registry_url}) as client:
        serialize = AvroSerializer(
            client, conf={"auto.register.schemas": False, "use.latest.version": True}
        )
        producer = Producer(kafka_clients.producer_config(settings))
        context = SerializationContext(topic, MessageField.VALUE)
        for record in executions:
            _name, fields = codec.decode_dict(codec.encode(record))
            producer.produce(topic, key=record.item_key.encode(), value=serialize(fields, context))
        assert producer.flush(30) == 0

    namespace: dict[str, Any] = {}
    _run_registry_block(
        "analysts.md",
        namespace,
        {
            '"localhost:9092"': repr(settings.kafka_bootstrap_servers),
            '"automation.executions"': repr(topic),
            '"analytics-stock"': repr(f"docs-test-{uuid.uuid4().hex[:8]}"),
            REGISTRY_IN_DOCS: repr(registry_url),
        },
    )
    assert sorted(namespace["statuses"]) == sorted(
        (e.item_key, e.rule_id, e.status.value) for e in executions
    )
    assert len(executions) >= 4
