"""A report's blocks (:mod:`fedlm.report.document`) as Markdown and as one self-contained HTML page.

The HTML page carries its plots inside it (``data:`` URIs), so it shows whole wherever it is
opened: MLflow's UI renders an HTML artifact, while it shows Markdown as plain text.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from fedlm.report.document import Block, Heading, Image, Items, Paragraph, Table, main_table
from fedlm.report.study import Study
from fedlm.report.summary import Row


def markdown_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return lines


def table(rows: Sequence[Row], study: Study) -> list[str]:
    """The first table's Markdown lines."""
    return markdown_table(main_table(rows, study))


def to_markdown(blocks: Sequence[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append("\n".join(markdown_table(block)))
        elif isinstance(block, Items):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Image):
            parts.append(f"![{block.alt}]({block.file})")
    return "\n\n".join(parts) + "\n"


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
th span { display: inline-block; max-width: 16em; overflow-wrap: break-word; }
code { background: #f4f4f4; padding: 0 0.2em; }
img { max-width: 100%; display: block; margin: 1em 0; }
"""


def inline(text: str) -> str:
    """Escaped text with Markdown's `code` and **bold** as HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]*)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def to_html(blocks: Sequence[Block], folder: str | Path) -> str:
    """One HTML page; images are read from ``folder`` and embedded (a missing one is named)."""
    folder = Path(folder)
    title = next((b.text for b in blocks if isinstance(b, Heading)), "report")
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Table):
            # A long header ("paper (not comparable: ...)") wraps instead of widening the table.
            head = "".join(f"<th><span>{inline(h)}</span></th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Items):
            parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Image):
            path = folder / block.file
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                src = f"data:image/png;base64,{data}"
                parts.append(f'<img src="{src}" alt="{html.escape(block.alt)}">')
            else:
                parts.append(f"<p>(missing image: {html.escape(block.file)})</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
