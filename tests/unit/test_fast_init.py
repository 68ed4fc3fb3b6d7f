"""`@fast_init`: the same frozen dataclass, built with the same parameters, only cheaper."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from automation_core import model
from automation_core.evaluate import Decision, ItemState
from automation_core.fast_init import fast_init


@dataclass(frozen=True)
class _Plain:
    name: str
    count: int = 0
    tags: dict[str, str] = field(default_factory=dict)


@fast_init
@dataclass(frozen=True)
class _Fast:
    name: str
    count: int = 0
    tags: dict[str, str] = field(default_factory=dict)


def test_it_takes_the_parameters_of_the_dataclass_init_and_fills_the_same_fields() -> None:
    assert inspect.signature(_Fast.__init__).parameters.keys() == (
        inspect.signature(_Plain.__init__).parameters.keys()
    )
    for args, kwargs in (
        (("a",), {}),
        (("a", 3), {}),
        ((), {"name": "a", "tags": {"k": "v"}}),
        (("a",), {"count": 2, "tags": {}}),
    ):
        fast, plain = _Fast(*args, **kwargs), _Plain(*args, **kwargs)
        assert dataclasses.asdict(fast) == dataclasses.asdict(plain)
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast("a", unknown=1)  # type: ignore[call-arg]


def test_a_default_factory_gives_each_instance_its_own_value() -> None:
    first, second = _Fast("a"), _Fast("b")
    first.tags["k"] = "v"
    assert second.tags == {}


def test_it_stays_frozen_hashable_and_comparable() -> None:
    item = _Fast("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.name = "b"  # type: ignore[misc]
    assert item == _Fast("a", 1)
    assert item != _Fast("a", 2)
    assert dataclasses.replace(item, count=5) == _Fast("a", 5)
    assert repr(item) == "_Fast(name='a', count=1, tags={})"
    assert hash(_Fast("a", 1, ())) == hash(_Fast("a", 1, ()))  # type: ignore[arg-type]


def test_it_refuses_what_it_does_not_support() -> None:
    with pytest.raises(TypeError, match="frozen"):

        @fast_init
        @dataclass
        class _Mutable:
            name: str

    with pytest.raises(TypeError, match="__post_init__"):

        @fast_init
        @dataclass(frozen=True)
        class _Checked:
            name: str

            def __post_init__(self) -> None:
                pass


@pytest.mark.parametrize(
    "cls",
    [
        c
        for c in (*vars(model).values(), ItemState, Decision)
        if isinstance(c, type) and dataclasses.is_dataclass(c)
    ],
)
def test_every_domain_record_is_built_by_the_fast_init(cls: type) -> None:
    # dataclasses' frozen __init__ calls object.__setattr__ once a field; fast_init's
    # writes the instance's __dict__.
    code = cls.__init__.__code__
    assert "__setattr__" not in code.co_names
    assert "__dict__" in code.co_names


def test_the_check_above_tells_a_plain_frozen_init_apart() -> None:
    assert "__setattr__" in _Plain.__init__.__code__.co_names
    assert "__setattr__" not in _Fast.__init__.__code__.co_names


def test_a_domain_record_built_fast_equals_one_built_by_replace() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    execution = model.Execution("r-1", "DEAL:1", "e-1", model.ExecutionStatus.FIRED, now)
    assert dataclasses.replace(execution, reason=None) == execution
    assert execution.action_id is None and execution.reason is None
    item = model.Item(title="t", responsible_id="u-1")
    assert item.fields == {} and item.fields is not model.Item("t", "u-1").fields
