"""The jinja2 environment of every report template (``templates/``) and the filters they share."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

__all__ = ["number_cell", "template_environment"]

TEMPLATES = Path(__file__).parent / "templates"


def number_cell(value: object, width: int, digits: int = 3) -> str:
    """``value`` right-aligned in ``width`` with ``digits`` decimals; "-" when it is not a number."""
    if not isinstance(value, int | float):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def _table_cell(text: object) -> str:
    """A Markdown table cell: a "|" inside would split it, a line break would end the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


@functools.cache
def template_environment() -> jinja2.Environment:
    """Markdown and plain-text templates: HTML is rendered from the Markdown, and escaped there."""
    environment = jinja2.Environment(  # nosec B701  # no template renders HTML: page.py escapes the Markdown
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(cell=_table_cell, num=number_cell)
    return environment
