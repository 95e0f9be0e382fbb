"""A report as a list of blocks, written twice: `report.md` with PNG files beside it, and
`report.html`, one self-contained file with every image embedded as a base64 data URI.

    doc = Document("Title")
    doc.heading("Scores")
    doc.paragraph("Text with `code` and **bold**.")
    doc.table(["system", "BLEU"], [["a", "38.24"]])
    doc.figure("curves.png", "Training curves")   # a PNG already saved in the output folder
    doc.write(folder)                              # folder/report.md, folder/report.html

Paragraph text is markdown's inline subset: `code` and **bold**; table cells are
plain text (a `|` in a cell is escaped in markdown).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 78em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
code, pre { background: #f6f6f6; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
"""


def markdown_table(columns: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table; cells are turned into text, `|` escaped."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(columns), "|" + "---|" * len(columns), *(line(r) for r in rows)]) + "\n"


def inline_html(text: str) -> str:
    """Markdown's inline subset (`code` and **bold**) as escaped HTML."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2

    def markdown(self) -> str:
        return f"{'#' * self.level} {self.text}\n"

    def html(self, folder: Path) -> str:
        return f"<h{self.level}>{inline_html(self.text)}</h{self.level}>"


@dataclass(frozen=True)
class Paragraph:
    text: str

    def markdown(self) -> str:
        return self.text + "\n"

    def html(self, folder: Path) -> str:
        return f"<p>{inline_html(self.text)}</p>"


@dataclass(frozen=True)
class Code:
    text: str

    def markdown(self) -> str:
        return f"```\n{self.text.rstrip()}\n```\n"

    def html(self, folder: Path) -> str:
        return f"<pre><code>{html.escape(self.text.rstrip())}</code></pre>"


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list]

    def markdown(self) -> str:
        return markdown_table(self.columns, self.rows)

    def html(self, folder: Path) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class Figure:
    file: str  # a PNG in the report folder
    caption: str

    def markdown(self) -> str:
        return f"![{self.caption}]({self.file})\n"

    def html(self, folder: Path) -> str:
        data = base64.b64encode((folder / self.file).read_bytes()).decode("ascii")
        alt = html.escape(self.caption, quote=True)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{alt}" data-file="{html.escape(self.file)}">'
            f"<figcaption>{inline_html(self.caption)}</figcaption></figure>"
        )


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, block) -> None:
        """Any block: Heading, Paragraph, Code, Table or Figure."""
        self.blocks.append(block)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Heading(text, level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(Paragraph(text))

    def code(self, text: str) -> None:
        self.blocks.append(Code(text))

    def table(self, columns: list[str], rows: list[list]) -> None:
        self.blocks.append(Table(columns, rows))

    def figure(self, file: str, caption: str) -> None:
        self.blocks.append(Figure(file, caption))

    def figures(self) -> list[str]:
        return [b.file for b in self.blocks if isinstance(b, Figure)]

    def markdown(self) -> str:
        return "\n".join([Heading(self.title, 1).markdown(), *(b.markdown() for b in self.blocks)])

    def html(self, folder: Path) -> str:
        """One HTML page with no external references: styles inline, images as data URIs."""
        body = "\n".join(b.html(folder) for b in [Heading(self.title, 1), *self.blocks])
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n"
        )

    def write(self, folder: Path) -> tuple[Path, Path]:
        """`folder/report.md` and `folder/report.html`; the figures must already be in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        md, page = folder / "report.md", folder / "report.html"
        md.write_text(self.markdown(), encoding="utf-8")
        page.write_text(self.html(folder), encoding="utf-8")
        return md, page
