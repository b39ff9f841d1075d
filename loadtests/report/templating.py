"""The jinja2 environment of every report template (``templates/``) and the filters they share."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["lenient", "number_cell", "template_environment", "text_table"]

TEMPLATES = Path(__file__).parent / "templates"


def lenient(section: Mapping[str, Any]) -> defaultdict[str, Any]:
    """A results section whose missing fields read as None in a template (written "None", as
    ``.get`` would), so that an older or partial results file still renders."""
    return defaultdict(lambda: None, section)


def number_cell(value: object, width: int, digits: int = 3) -> str:
    """``value`` right-aligned in ``width`` with ``digits`` decimals; "-" when it is not a number."""
    if not isinstance(value, int | float):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def text_table(rows: Sequence[Sequence[str]], headers: Sequence[str], right: Sequence[bool] = ()) -> str:
    """``rows`` under ``headers`` in aligned columns (``right``: right-align these columns)."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).rjust(w) if i < len(right) and right[i] else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _table_cell(text: object) -> str:
    """A Markdown table cell: a "|" inside would split it, a line break would end the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


@functools.cache
def template_environment(folder: Path = TEMPLATES) -> jinja2.Environment:
    """Markdown and plain-text templates in ``folder`` (the comparison's by default), with the shared
    filters: HTML is rendered from the Markdown, and escaped there."""
    environment = jinja2.Environment(  # nosec B701  # no template renders HTML: page.py escapes the Markdown
        loader=jinja2.FileSystemLoader(folder),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(cell=_table_cell, num=number_cell, text_table=text_table)
    return environment
