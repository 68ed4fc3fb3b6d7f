"""Configuration problems in the words of the environment: variable names, not fields."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_settings import SettingsError

from runtime.settings import ENV_PREFIX, Settings


def known_variables() -> set[str]:
    return {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per `CRM_AUTOMATION_*` variable that is no setting (a misspelling is
    otherwise silently ignored), with the closest setting's name where one is close."""
    known = known_variables()
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        # Compared without the prefix, which every name shares.
        suffixes = sorted(k.removeprefix(ENV_PREFIX) for k in known)
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1, cutoff=0.8)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        warnings.append(f"warning: {name} is not a setting and is ignored{hint}")
    return warnings


def describe(error: ValidationError | SettingsError) -> list[str]:
    """One line per invalid setting: the variable, what is wrong, without its value (it
    may be a secret)."""
    if isinstance(error, SettingsError):  # a list or mapping setting that is not JSON
        found = re.search(r'field "(\w+)"', str(error))
        variable = f"{ENV_PREFIX}{found.group(1).upper()}" if found else "a setting"
        return [f"error: {variable}: expected JSON (a list or an object)"]
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        variable = f"{ENV_PREFIX}{field.upper()}" if field else "a CRM_AUTOMATION_* variable"
        lines.append(f"error: {variable}: {problem['msg']}")
    return lines
