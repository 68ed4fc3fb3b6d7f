"""The engine's event loop is the one its settings name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from runtime.settings import Settings
from streams.app import use_event_loop


@pytest.fixture(autouse=True)
def default_policy_after() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


@pytest.mark.parametrize(("name", "is_uvloop"), [("uvloop", True), ("asyncio", False)])
def test_the_engine_runs_on_the_event_loop_its_settings_name(name: str, is_uvloop: bool) -> None:
    use_event_loop(Settings(engine_event_loop=name).engine_event_loop)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop) is is_uvloop
    finally:
        loop.close()


def test_uvloop_is_the_default_and_an_unknown_loop_is_refused() -> None:
    assert Settings().engine_event_loop == "uvloop"
    with pytest.raises(ValueError, match="engine_event_loop"):
        Settings(engine_event_loop="gevent")  # type: ignore[arg-type]
