"""A spec field declared once: its canonical key and form, and its key in the rules file.

`declare(...)` is a field's metadata: its key in the canonical dict (`Rule.spec`), its form
there, whether it is left out while it holds its default, and its key in the rules file.
`to_dict`, `from_dict` and `yaml_keys` derive the canonical dict and the rules file's
allowed keys from the dataclass fields. A field declared without metadata is stored under
its own name, as it is, and written in the rules file under that name.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from automation_core.time_spec import time_from_dict, time_to_dict

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Spec = TypeVar("Spec", bound="DataclassInstance")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Form:
    """How a field's value is written into the canonical dict (JSON values only) and read
    back from it; `read` raises KeyError, TypeError or ValueError on what it cannot read."""

    write: Callable[[Any], Any] = _same
    read: Callable[[Any], Any] = _same


AS_IS = Form()
FLAG = Form(read=bool)
NUMBER = Form(read=int)
TEXTS = Form(write=list, read=lambda raw: tuple(raw or ()))
"""A tuple of strings, a JSON list; null reads as empty."""
PAIRS = Form(
    write=lambda pairs: [list(pair) for pair in pairs],
    read=lambda raw: tuple((str(name), str(value)) for name, value in raw or ()),
)
"""A tuple of (name, value) pairs, a JSON list of two-element lists; null reads as empty."""
TIME = Form(
    write=lambda t: None if t is None else time_to_dict(t),
    read=lambda raw: None if raw is None else time_from_dict(raw),
)
"""An optional `TimeSpec`, as its own canonical dict."""


@dataclass(frozen=True)
class Declaration:
    key: str | None = None
    """The canonical dict's key; None: the field's name."""
    form: Form = AS_IS
    omit_default: bool = False
    """Left out of the dict while it holds its default: a field added after rules were
    published keeps their dicts, and so their versions, as they were."""
    yaml_key: str | None = None
    """The rules file's key; None: the canonical key. Two fields may share one (a
    `calendar` option sets both `add_to_calendar` and `duration_minutes`)."""


_METADATA_KEY = "automation_core.spec_fields"


def declare(
    key: str | None = None,
    *,
    form: Form = AS_IS,
    omit_default: bool = False,
    yaml_key: str | None = None,
) -> dict[str, Declaration]:
    """The `metadata` of a spec field: `field(default=(), metadata=declare(form=TEXTS))`."""
    return {_METADATA_KEY: Declaration(key, form, omit_default, yaml_key)}


@dataclass(frozen=True)
class _Field:
    name: str
    key: str
    form: Form
    required: bool
    default: Any
    omit_default: bool
    yaml_key: str


@functools.cache
def _fields(cls: type[DataclassInstance]) -> tuple[_Field, ...]:
    out = []
    for f in dataclasses.fields(cls):
        declared = f.metadata.get(_METADATA_KEY, Declaration())
        key = declared.key or f.name
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: a spec field's default is a value")
        out.append(
            _Field(
                name=f.name,
                key=key,
                form=declared.form,
                required=f.default is dataclasses.MISSING,
                default=f.default,
                omit_default=declared.omit_default,
                yaml_key=declared.yaml_key or key,
            )
        )
    return tuple(out)


def to_dict(spec: DataclassInstance) -> dict[str, Any]:
    """The fields of `spec` as canonical dict entries, in the order they are declared."""
    out: dict[str, Any] = {}
    for f in _fields(type(spec)):
        value = getattr(spec, f.name)
        if not (f.omit_default and value == f.default):
            out[f.key] = f.form.write(value)
    return out


def from_dict(cls: type[Spec], d: Mapping[str, Any]) -> Spec:
    """`cls` read from its canonical dict entries (other keys are ignored); KeyError when a
    field without a default is missing, TypeError or ValueError when a form cannot read."""
    values: dict[str, Any] = {}
    for f in _fields(cls):
        raw = d[f.key] if f.required else d.get(f.key, f.default)
        values[f.name] = f.form.read(raw)
    return cls(**values)


def yaml_keys(cls: type[DataclassInstance]) -> set[str]:
    """The keys the rules file may use for `cls`'s fields."""
    return {f.yaml_key for f in _fields(cls)}
