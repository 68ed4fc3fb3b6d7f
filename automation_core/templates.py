"""Text templates: `{{ path }}` placeholders and Bitrix `{=Document:FIELD}` aliases.

A plain regex substituter over the allowlisted field map of `fields`: no expression
language, no `eval`, no `str.format`. Values are inserted literally in one pass, so a
value that itself contains `{{ x }}` is never expanded. Output length is capped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from automation_core.fields import Value, canonical_field, field_reader
from automation_core.model import StageChanged

MAX_TEMPLATE_CHARS = 4000
MAX_RENDERED_CHARS = 8000
ELLIPSIS = "…"

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}|\{=Document:([A-Za-z0-9_.]*)\}", re.DOTALL)
_PATH = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*")

BITRIX_ALIASES: dict[str, str] = {
    "ID": "item_id",
    "TITLE": "item.title",
    "OPPORTUNITY": "item.amount",
    "CURRENCY_ID": "item.currency",
    "ASSIGNED_BY_ID": "item.responsible_id",
    "BEGINDATE": "item.begin_date",
    "CLOSEDATE": "item.close_date",
    "STAGE_ID": "stage_id",
    "CATEGORY_ID": "pipeline_id",
    "COMPANY_ID": "company.id",
    "COMPANY_ID.TITLE": "company.title",
    "CONTACT_ID": "contact.id",
    "CONTACT_ID.NAME": "contact.name",
    "CONTACT_ID.LAST_NAME": "contact.last_name",
    "CONTACT_ID.EMAIL": "contact.email",
    "CONTACT_ID.PHONE": "contact.phone",
}


def template_problems(template: str) -> list[str]:
    """Everything wrong with `template` (unknown field, malformed placeholder, size)."""
    problems: list[str] = []
    if len(template) > MAX_TEMPLATE_CHARS:
        problems.append(f"template longer than {MAX_TEMPLATE_CHARS} characters")
    for match in _PLACEHOLDER.finditer(template):
        if _placeholder_path(match) is None:
            problems.append(f"unknown template field {match.group(0)!r}")
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest or "{=" in rest:
        problems.append("unbalanced placeholder braces ('{{' without '}}' or '{=' without '}')")
    return problems


def template_fields(template: str) -> list[str]:
    """The canonical field paths a (valid) template reads."""
    return [p for m in _PLACEHOLDER.finditer(template) if (p := _placeholder_path(m))]


Render = Callable[[StageChanged], str]
"""A template compiled for one use: an event in, the rendered text out."""


def render(template: str, event: StageChanged, limit: int = MAX_RENDERED_CHARS) -> str:
    """`template` with every placeholder replaced by the field's text, cut to `limit`.

    Templates are validated when the rules file is applied; an unknown placeholder met
    here (a spec written by hand) renders as empty text rather than as user input.
    """
    return renderer(template, limit)(event)


@functools.lru_cache(maxsize=4096)
def renderer(template: str, limit: int = MAX_RENDERED_CHARS) -> Render:
    """`render` of `template` as a function of the event: the template is split into
    literal text and field readers once (rules repeat the same few templates for every
    event; parsing them per render cost more than the values)."""
    pieces: list[tuple[str, Callable[[StageChanged], Value] | None]] = []
    at = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > at:
            pieces.append((template[at : match.start()], None))
        path = _placeholder_path(match)
        if path is not None:  # an unknown field renders as nothing
            pieces.append(("", field_reader(path)))
        at = match.end()
    if not any(read is not None for _text, read in pieces):  # no field: the same text
        text = _cut(_PLACEHOLDER.sub("", template), limit)
        return lambda _event: text

    if at < len(template):
        pieces.append((template[at:], None))
    parts = tuple(pieces)

    def render_fields(event: StageChanged) -> str:
        return _cut(
            "".join([text if read is None else value_text(read(event)) for text, read in parts]),
            limit,
        )

    return render_fields


def _cut(rendered: str, limit: int) -> str:
    if len(rendered) > limit:
        return rendered[: limit - len(ELLIPSIS)] + ELLIPSIS
    return rendered


def fill_placeholders(template: str, filler: str) -> str:
    """`template` with every placeholder replaced by `filler` (to check its static shape)."""
    return _PLACEHOLDER.sub(filler, template)


def value_text(value: Value) -> str:
    """How a field value reads inside text: lists joined by ', ', dates ISO, None empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _placeholder_path(match: re.Match[str]) -> str | None:
    inner, bitrix = match.group(1), match.group(2)
    if bitrix is not None:
        if bitrix.startswith("UF_"):
            return canonical_field(bitrix)
        return BITRIX_ALIASES.get(bitrix)
    path = _PATH.fullmatch(inner)
    return None if path is None else canonical_field(path.group(1))
