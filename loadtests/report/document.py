"""A report as a list of plain blocks, rendered once as Markdown and once as self-contained HTML."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Block", "Heading", "Image", "Paragraph", "Raw", "Table", "to_html", "to_markdown"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    """Plain text; ``**bold**`` and ``` `code` ``` are kept in Markdown and rendered in HTML."""


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    numeric: Sequence[bool] = field(default_factory=tuple)
    """Right-align these columns (HTML)."""


@dataclass(frozen=True)
class Image:
    title: str
    png: bytes
    file: str
    """Relative path of the same PNG next to report.md."""


@dataclass(frozen=True)
class Raw:
    """A section rendered elsewhere (from a template), once per output format."""

    html: str
    markdown: str


Block = Heading | Paragraph | Table | Image | Raw


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Table):
            if block.caption:
                out.append(f"*{block.caption}*")
                out.append("")
            out.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            aligns = [
                ("---:" if i < len(block.numeric) and block.numeric[i] else "---")
                for i in range(len(block.headers))
            ]
            out.append("| " + " | ".join(aligns) + " |")
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows)
        elif isinstance(block, Raw):
            out.append(block.markdown.rstrip())
        else:
            out.append(f"![{block.title}]({block.file})")
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    escaped = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1b1f23;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1.1rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top}
th{background:#f3f5f7;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:.3rem}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}img{max-width:100%;border:1px solid #eee}
code{background:#f3f5f7;padding:0 .2rem;border-radius:3px}
.verdict p.sentence{font-size:1.08rem;margin:.35rem 0}
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page: inline CSS, charts embedded as base64 PNG."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            for para in block.text.split("\n\n"):
                lines = para.splitlines()
                if lines and all(line.startswith("- ") for line in lines):
                    items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
                    body.append(f"<ul>{items}</ul>")
                else:
                    body.append(f"<p>{_inline(' '.join(lines))}</p>")
        elif isinstance(block, Table):
            caption = f"<caption>{_inline(block.caption)}</caption>" if block.caption else ""
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.headers)
            rows = []
            for row in block.rows:
                cells = "".join(
                    f'<td class="n">{_inline(c)}</td>'
                    if i < len(block.numeric) and block.numeric[i]
                    else f"<td>{_inline(c)}</td>"
                    for i, c in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            body.append(
                f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        elif isinstance(block, Raw):
            body.append(block.html)
        else:
            data = base64.b64encode(block.png).decode()
            body.append(
                f"<figure><figcaption>{_inline(block.title)}</figcaption>"
                f'<img alt="{html.escape(block.title)}" src="data:image/png;base64,{data}"></figure>'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
