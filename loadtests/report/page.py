"""One self-contained HTML page rendered from a report's Markdown, its charts embedded.

The Markdown is the one source, so the two formats cannot drift apart. It is rendered as CommonMark
plus tables with raw HTML off: nothing a server wrote into the results (an error text, a version
string) can become markup. Each chart the Markdown links to is embedded as a base64 PNG, so the page
is one file to keep or send.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from markdown_it import MarkdownIt

__all__ = ["html_page"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1b1f23;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1.1rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
table{display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top}
th{background:#f3f5f7;text-align:left}
td[style*=right]{font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:100%;border:1px solid #eee}
code{background:#f3f5f7;padding:0 .2rem;border-radius:3px}
"""


def html_page(markdown: str, title: str, images: Mapping[str, bytes]) -> str:
    """``markdown`` as a page titled ``title``; ``images`` maps each linked file name to its PNG."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    for name, png in images.items():
        embedded = "data:image/png;base64," + base64.b64encode(png).decode()
        body = body.replace(f'src="{html.escape(name)}"', f'src="{embedded}"')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + body
        + "</body></html>\n"
    )
