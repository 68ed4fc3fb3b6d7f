"""`crm-automation run` soak: fresh starts, rules and events sent at once, all acted on.

    .venv/bin/python bench/soak_run.py [--starts 20] [--events 12]

Each start is a new user's first run: a fresh CRM_AUTOMATION_HOME (so a new Kafka, Postgres
and Radicale), `crm-automation run` started, six rules applied with `crm-automation rules
apply` as soon as the stack answers, and a dozen events produced a second later, while
the engine is still joining its group. A start passes when every immediate action the
pure core decides for those events is on `automation.actions` within 120 s. Then run
gets SIGINT (it must exit 0) and the stack is stopped. Prints a line per start and the
tally; writes bench/results/soak-run-*.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from automation_core.evaluate import rule_index_from
from automation_core.model import Action, Company, Contact, EntityType, Item, StageChanged
from automation_core.rules_file import validate_rules_file
from automation_core.simulate import simulate
from crm_automation.stack import Stack
from runtime import codec, kafka_clients, topics
from runtime.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from common import CLI, write_result  # noqa: E402

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, APPROVAL, WON, LOST]}
  - {id: installation, entity_type: DEAL, stages: [NEW, DONE]}
rules:
  - id: copy-won
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: copy_deal, target_pipeline: installation}
  - id: thank-won
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: plan_activity, subject: Say thank you, deadline: {delay: 1d}}
  - id: lead-won
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: create_lead, title: "Upsell: {{ item.title }}"}
  - id: check-approval
    trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
    action: {type: plan_activity, subject: Check the offer, deadline: {delay: 1d}}
  - id: call-approval
    trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
    action: {type: plan_activity, subject: Call the client, deadline: {delay: 2d}}
  - id: copy-lost
    trigger: {entity_type: DEAL, pipeline: sales, stage: LOST}
    action: {type: copy_deal, target_pipeline: installation, suffix: " (lost)"}
"""


def events(count: int, run: str) -> list[StageChanged]:
    now = datetime.now(UTC)
    stages = ("WON", "APPROVAL", "LOST")
    return [
        StageChanged(
            event_id=f"soak-{run}-{n}",
            occurred_at=now,
            entity_type=EntityType.DEAL,
            item_id=f"d-{run}-{n}",
            pipeline_id="sales",
            stage_id=stages[n % len(stages)],
            previous_stage_id="NEW",
            item=Item(
                title=f"Deal {n}",
                responsible_id="u-7",
                amount=Decimal("1200.00"),
                currency="EUR",
                company=Company("c-1", "Example GmbH"),
                contacts=(Contact("p-1", "Anna", "Muster", "anna@example.com", "+49 30 1"),),
            ),
        )
        for n in range(count)
    ]


def expected_actions(sent: list[StageChanged]) -> set[str]:
    rules = validate_rules_file(RULES)
    index = rule_index_from(rules.rules)
    steps = simulate(sent, index)
    return {action.action_id for step in steps for action in step.decision.actions}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def emitted(s: Settings, wanted: set[str], timeout: float) -> set[str]:
    """The wanted action ids found on automation.actions within `timeout` seconds."""
    name = s.topic(topics.ACTIONS)
    consumer = Consumer(kafka_clients.consumer_config(s, f"soak-{uuid.uuid4().hex[:8]}"))
    found: set[str] = set()
    try:
        consumer.assign([TopicPartition(name, p, 0) for p in range(s.partitions)])
        deadline = time.monotonic() + timeout
        while not wanted <= found and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.add(codec.decode_as(message.value(), Action).action_id)
    finally:
        consumer.close()
    return found & wanted


def one_start(work: Path, count: int) -> dict[str, Any]:
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_AUTOMATION_")}
    env["CRM_AUTOMATION_HOME"] = str(home)
    rules = work / "rules.yaml"
    rules.write_text(RULES)
    with open(work / "run.log", "wb") as log:
        run = subprocess.Popen(  # noqa: S603
            [CLI, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    began = time.monotonic()
    try:
        while (applied := cli(env, "rules", "apply", str(rules))).returncode != 0:
            if run.poll() is not None or time.monotonic() - began > 180:
                return {"outcome": f"failed: rules apply: {applied.stderr.strip()[-300:]}"}
            time.sleep(0.5)  # the stack is still starting: retry (a user would too)
        applied_after = time.monotonic() - began
        time.sleep(1.0)  # "a second later", as in the report this soak reproduces
        s = Stack(Settings(home=home)).resolved_settings()
        sent = events(count, uuid.uuid4().hex[:6])
        producer = Producer(kafka_clients.producer_config(s))
        for event in sent:
            producer.produce(
                s.topic(topics.STAGE_CHANGES), key=event.key.encode(), value=codec.encode(event)
            )
        kafka_clients.flush_or_raise(producer)
        wanted = expected_actions(sent)
        found = emitted(s, wanted, 120)
        outcome = "complete" if found == wanted else f"{len(wanted - found)} actions missing"
        return {
            "outcome": outcome,
            "rules_applied_after_s": applied_after,
            "actions": len(wanted),
            "found": len(found),
        }
    finally:
        run.send_signal(signal.SIGINT)
        try:
            code = run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
            code = run.wait()
        cli(env, "stack", "down")
        if code != 0:
            print(f"  run exited {code}; see {work / 'run.log'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--events", type=int, default=12)
    parser.add_argument("--keep", type=Path, help="keep failed starts' logs under DIR")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="soak-run-") as tmp:
        for start in range(1, args.starts + 1):
            work = Path(tmp) / f"start-{start}"
            work.mkdir()
            began = time.monotonic()
            result = one_start(work, args.events)
            result.update(start=start, seconds=time.monotonic() - began)
            runs.append(result)
            print(f"start {start:2}: {result['outcome']} in {result['seconds']:.1f} s", flush=True)
            if result["outcome"] != "complete" and args.keep is not None:
                shutil.copytree(work, args.keep / work.name, ignore=shutil.ignore_patterns("home"))
                shutil.copytree(work / "home" / "logs", args.keep / work.name / "logs")
    complete = sum(r["outcome"] == "complete" for r in runs)
    print(f"{complete} of {args.starts} starts complete", flush=True)
    path = write_result("soak-run", {"complete": complete, "runs": runs}, vars(args))
    print(f"results: {path}", flush=True)
    if complete != args.starts:
        sys.exit(1)


if __name__ == "__main__":
    main()
