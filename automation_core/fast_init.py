"""Frozen dataclasses that are cheap to build.

A `@dataclass(frozen=True)` sets each field in its `__init__` through
`object.__setattr__` (its own `__setattr__` refuses), a call per field. The engine
builds such objects for every event it evaluates (actions, payloads, clients,
execution records, timer commands, the item's state) and the codec for every event it
decodes. `@fast_init` over `@dataclass(frozen=True)` keeps the class what it is
(equality, hash, `replace`, `fields`, refusing assignment) and gives it an `__init__`
with the same parameters that writes the instance's `__dict__` directly, as
`functools.cached_property` does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

T = TypeVar("T")

_FACTORY = object()
"""The default of a parameter whose field has a `default_factory`."""


def fast_init(cls: type[T]) -> type[T]:
    """Replace the `__init__` of frozen dataclass `cls` by one with the same parameters."""
    params_of = getattr(cls, "__dataclass_params__", None)
    if params_of is None or not params_of.frozen:
        raise TypeError(f"{cls.__name__}: @fast_init goes over @dataclass(frozen=True)")
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__}: @fast_init supports neither __post_init__ nor slots")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    params: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cast(Any, cls)):  # a dataclass: checked above
        if not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: @fast_init needs plain init fields")
        name = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = f.default
            params.append(f"{name}=_default_{name}")
            body.append(f"    d[{name!r}] = {name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            params.append(f"{name}=_FACTORY")
            body.append(f"    d[{name!r}] = _factory_{name}() if {name} is _FACTORY else {name}")
        else:
            params.append(name)
            body.append(f"    d[{name!r}] = {name}")
    source = f"def __init__(self, {', '.join(params)}):\n    d = self.__dict__\n"
    exec(source + "\n".join(body) + "\n", namespace)  # noqa: S102 - code built from field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses assigning a method
    return cls
