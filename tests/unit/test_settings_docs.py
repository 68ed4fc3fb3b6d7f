"""docs/configuration.md documents every setting, with its real default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.settings import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_ROW = re.compile(r"^\| `(CRM_AUTOMATION_[A-Z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$")


def documented() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            rows[match[1]] = (match[2].strip(), match[3].strip())
    return rows


def rendered_default(name: str) -> str:
    """How the table writes a field's default: `value`, `""`, unset, or prose for factories."""
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        return {"home": "user data dir", "cache_dir": "user cache dir"}[name]
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table_with_its_default(name: str) -> None:
    variable = f"{ENV_PREFIX}{name.upper()}"
    rows = documented()
    assert variable in rows, f"{variable} missing from {DOC}"
    default, meaning = rows[variable]
    assert default == rendered_default(name)
    assert meaning


def test_the_table_documents_no_variable_that_does_not_exist() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert set(documented()) - known == set()
