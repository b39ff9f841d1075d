"""A report as a list of plain blocks, written as Markdown (``page`` renders that as report.html)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Block", "Heading", "Image", "Paragraph", "Raw", "Table", "to_markdown"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    """Markdown: ``**bold**``, ``` `code` ``` and ``- `` list lines."""


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    numeric: Sequence[bool] = field(default_factory=tuple)
    """Right-align these columns."""


@dataclass(frozen=True)
class Image:
    title: str
    file: str
    """Relative path of the PNG next to report.md (report.html embeds it)."""


@dataclass(frozen=True)
class Raw:
    """A section rendered elsewhere (from a template)."""

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
            out.append(f"*{block.title}*")
            out.append("")
            out.append(f"![{block.title}]({block.file})")
        out.append("")
    return "\n".join(out)
