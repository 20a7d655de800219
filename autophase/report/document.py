"""A tiny document model — sections, paragraphs, tables, figures, summary cards — and
its two renderings: one self-contained HTML page and a Markdown twin.

The report's sections build these blocks once; :func:`render_html` inlines every figure
as a ``data:image/png;base64`` URI and all CSS (the page loads nothing from anywhere),
:func:`render_markdown` refers to the same figures as files under ``figures/``.

Cell classes carry meaning, not just colour: ``regress`` (red, time up / throughput down
beyond the threshold), ``improve`` (green), ``muted``; the text itself also says it
(▲/▼ and a word) so that the Markdown and a colour-blind reader get the same message.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

__all__ = ["Cell", "Para", "Table", "Figure", "Card", "Cards", "Details", "Section", "Document",
           "render_html", "render_markdown", "IMAGE_CHECK_ATTR"]

# The page's own script writes "<rendered>/<total>" images here once it has loaded; the
# Chromium test and autophase.report.browser read it back.
IMAGE_CHECK_ATTR = "data-images-rendered"


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""          # "regress" | "improve" | "muted" | "num" | ""
    title: str = ""        # hover text (HTML only)


@dataclass(frozen=True)
class Para:
    text: str
    kind: str = ""         # "" | "note" | "warn" | "ok"


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Union[Cell, str]]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    name: str              # file stem, unique within the report
    png: bytes
    caption: str
    alt: str = ""


@dataclass(frozen=True)
class Card:
    title: str
    value: str
    detail: str = ""
    cls: str = ""          # "regress" | "improve" | "muted" | ""


@dataclass(frozen=True)
class Cards:
    cards: Sequence[Card]


@dataclass
class Details:
    """A folded part (HTML ``<details>``): long tables a reader opens on demand."""

    summary: str
    blocks: list[Any] = field(default_factory=list)


Block = Union[Para, Table, Figure, Cards, Details, "Section"]


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Any] = field(default_factory=list)


@dataclass
class Document:
    title: str
    header: list[tuple[str, str]]          # (label, value) lines under the title
    sections: list[Section]


def _cell(c: Union[Cell, str, float, int]) -> Cell:
    return c if isinstance(c, Cell) else Cell(str(c))


def figures_of(doc: Document) -> list[Figure]:
    out: list[Figure] = []

    def walk(blocks):
        for b in blocks:
            if isinstance(b, Figure):
                out.append(b)
            elif isinstance(b, (Section, Details)):
                walk(b.blocks)
    for s in doc.sections:
        walk(s.blocks)
    return out


# ----------------------------------------------------------------------------- HTML
_CSS = """
:root{--fg:#1d2330;--muted:#6b7280;--line:#e3e6ec;--bg:#fafbfc;--red:#b42318;--redbg:#fde8e7;
--green:#067647;--greenbg:#e3f6ea;--blue:#1f5fbf;--amber:#8a5a00;--amberbg:#fff4d6}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 "DejaVu Sans",system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:26px;margin:0 0 6px}
h2{font-size:20px;margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:16px;margin:22px 0 8px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px;color:var(--muted);margin:6px 0 14px}
.meta b{color:var(--fg);font-weight:600}
nav{font-size:13px;margin:8px 0 0}
nav a{margin-right:12px;color:var(--blue);text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid var(--line);border-left:6px solid var(--blue);border-radius:8px;padding:12px 14px}
.card h4{margin:0;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.card .v{font-size:22px;font-weight:700;margin:4px 0 2px}
.card .d{font-size:13px;color:var(--muted);white-space:pre-line;overflow-wrap:anywhere}
.card.regress{border-left-color:var(--red)} .card.regress .v{color:var(--red)}
.card.improve{border-left-color:var(--green)} .card.improve .v{color:var(--green)}
.card.muted{border-left-color:#9aa3b2}
table{border-collapse:collapse;margin:8px 0 4px;background:#fff;font-size:13.5px;max-width:100%}
th,td{border:1px solid var(--line);padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f1f3f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.regress{background:var(--redbg);color:var(--red);font-weight:600;text-align:right;white-space:nowrap}
td.improve{background:var(--greenbg);color:var(--green);font-weight:600;text-align:right;white-space:nowrap}
td.muted{color:var(--muted)}
.tablewrap{overflow-x:auto}
caption{caption-side:bottom;text-align:left;font-size:12.5px;color:var(--muted);padding-top:4px}
p.note{background:#eef3fb;border-left:4px solid var(--blue);padding:8px 12px}
p.warn{background:var(--amberbg);border-left:4px solid var(--amber);padding:8px 12px;color:#5c3d00}
p.ok{background:var(--greenbg);border-left:4px solid var(--green);padding:8px 12px}
figure{margin:12px 0 18px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:13px;color:var(--muted);margin-top:6px}
details{margin:14px 0}
details>summary{cursor:pointer;color:var(--blue);font-size:14px;font-weight:600}
footer{margin-top:40px;font-size:12px;color:var(--muted)}
"""

# Counts the images that decoded (naturalWidth > 0) once everything has loaded, and
# writes the result where a headless browser (or a curious reader) can see it.
_SCRIPT = f"""
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) {{ return im.complete && im.naturalWidth > 0; }}).length;
  document.documentElement.setAttribute("{IMAGE_CHECK_ATTR}", ok + "/" + imgs.length);
}});
"""


def _h(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _html_block(b: Any, level: int) -> str:
    if isinstance(b, Para):
        cls = f' class="{_h(b.kind)}"' if b.kind else ""
        return f"<p{cls}>{_h(b.text)}</p>"
    if isinstance(b, Table):
        head = "".join(f"<th>{_h(c)}</th>" for c in b.columns)
        body = []
        for row in b.rows:
            tds = []
            for c in map(_cell, row):
                attrs = (f' class="{_h(c.cls)}"' if c.cls else "") + (f' title="{_h(c.title)}"' if c.title else "")
                tds.append(f"<td{attrs}>{_h(c.text)}</td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        cap = f"<caption>{_h(b.caption)}</caption>" if b.caption else ""
        return (f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        return (f'<figure id="fig-{_h(b.name)}"><img src="data:image/png;base64,{data}" '
                f'alt="{_h(b.alt or b.caption)}"><figcaption>{_h(b.caption)}</figcaption></figure>')
    if isinstance(b, Cards):
        cards = []
        for c in b.cards:
            cls = f"card {_h(c.cls)}" if c.cls else "card"
            cards.append(f'<div class="{cls}"><h4>{_h(c.title)}</h4><div class="v">{_h(c.value)}</div>'
                         f'<div class="d">{_h(c.detail)}</div></div>')
        return f'<div class="cards">{"".join(cards)}</div>'
    if isinstance(b, Details):
        inner = "\n".join(_html_block(x, level) for x in b.blocks)
        return f"<details><summary>{_h(b.summary)}</summary>\n{inner}</details>"
    if isinstance(b, Section):
        tag = f"h{min(level, 6)}"
        inner = "\n".join(_html_block(x, level + 1) for x in b.blocks)
        return f'<section id="{_h(b.anchor)}"><{tag}>{_h(b.title)}</{tag}>\n{inner}</section>'
    raise TypeError(f"unknown block {type(b).__name__}")


def render_html(doc: Document, footer: str = "") -> str:
    """The whole page as one string: no external resources of any kind."""
    meta = "".join(f"<span>{_h(k)}</span><b>{_h(v)}</b>" for k, v in doc.header)
    nav = "".join(f'<a href="#{_h(s.anchor)}">{_h(s.title)}</a>' for s in doc.sections)
    body = "\n".join(_html_block(s, 2) for s in doc.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_h(doc.title)}</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{_h(doc.title)}</h1>
<div class="meta">{meta}</div>
<nav>{nav}</nav>
{body}
<footer>{_h(footer)}</footer>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


# ------------------------------------------------------------------------- Markdown
_MD_MARK = {"regress": "🔴 ", "improve": "🟢 "}


def _md_text(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _md_block(b: Any, level: int, fig_dir: str) -> str:
    if isinstance(b, Para):
        prefix = {"note": "> ", "warn": "> **Warning:** ", "ok": "> "}.get(b.kind, "")
        return prefix + b.text
    if isinstance(b, Table):
        cols = [_md_text(c) for c in b.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for row in b.rows:
            cells = [_MD_MARK.get(c.cls, "") + _md_text(c.text) for c in map(_cell, row)]
            lines.append("| " + " | ".join(cells) + " |")
        if b.caption:
            lines += ["", f"*{b.caption}*"]
        return "\n".join(lines)
    if isinstance(b, Figure):
        return f"![{_md_text(b.alt or b.caption)}]({fig_dir}/{b.name}.png)\n\n*{b.caption}*"
    if isinstance(b, Cards):
        return "\n".join(f"- **{c.title}: {_MD_MARK.get(c.cls, '')}{c.value}**"
                         + (f" — {c.detail.replace(chr(10), '; ')}" if c.detail else "") for c in b.cards)
    if isinstance(b, Details):
        inner = "\n\n".join(_md_block(x, level, fig_dir) for x in b.blocks)
        return f"<details><summary>{html.escape(b.summary)}</summary>\n\n{inner}\n\n</details>"
    if isinstance(b, Section):
        inner = "\n\n".join(_md_block(x, level + 1, fig_dir) for x in b.blocks)
        return f"{'#' * min(level, 6)} {b.title}\n\n{inner}"
    raise TypeError(f"unknown block {type(b).__name__}")


def render_markdown(doc: Document, fig_dir: str = "figures", footer: str = "") -> str:
    """The Markdown twin; figures are linked as ``{fig_dir}/{name}.png``."""
    head = [f"# {doc.title}", ""] + [f"- {k}: **{v}**" for k, v in doc.header] + [""]
    body = "\n\n".join(_md_block(s, 2, fig_dir) for s in doc.sections)
    tail = f"\n\n---\n\n{footer}\n" if footer else "\n"
    return "\n".join(head) + "\n" + body + tail
