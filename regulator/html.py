"""The HTML pieces the regulator's reports share: escaped bilingual headings and paragraphs, count cells with the
small-cell mark, percentages, tables and the page style."""

from __future__ import annotations

import html

from regulator.suppression import suppressed_mark


def esc(text) -> str:
    return html.escape(str(text))


def heading(level: int, zh: str, en: str, anchor: str | None = None) -> str:
    ident = f' id="{anchor}"' if anchor else ""
    return f'<h{level}{ident}>{esc(zh)} <span class="en">/ {esc(en)}</span></h{level}>'


def para(zh: str, en: str) -> str:
    return f'<p>{esc(zh)}<br><span class="en">{esc(en)}</span></p>'


def count(k: int, c: dict | None) -> str:
    if c is None:
        return "–"
    if c.get("suppressed"):
        return f'<span class="sup" title="suppressed / 已抑制">{esc(suppressed_mark(k))}</span>'
    return f"{c['count']:,}"


def count_share(k: int, c: dict, share: str = "share") -> str:
    """A count with its share (or rate) in small print."""
    return f"{count(k, c)} <small>{pct(c[share])}</small>"


def pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def num(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return esc(v)


def bilingual(lbl: dict) -> str:
    return esc(lbl["zh"]) if lbl["zh"] == lbl["en"] else f'{esc(lbl["zh"])} <span class="en">{esc(lbl["en"])}</span>'


def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;margin:2em auto;max-width:1050px;
color:#1a1a1a;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;border-bottom:3px solid #1565c0;padding-bottom:.3em}h2{margin-top:2em;color:#0d47a1;
border-bottom:1px solid #bbb}h3{margin-top:1.4em;font-size:1.05em}.en{color:#555;font-weight:normal}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em;width:100%}th,td{border:1px solid #ccc;
padding:3px 6px}th{background:#eef3fa;text-align:left}table.num td:not(:first-child){text-align:right}
table.narrow{width:auto}small{color:#666}.sup{color:#b71c1c;font-weight:bold}img{max-width:100%}
img.half{width:48%;margin-right:1%}.meta{font-size:.9em;color:#444}.legend{background:#fff8e1;padding:.5em 1em;
border-left:4px solid #ffa000;font-size:.9em}@media print{h2{page-break-before:always}h2:first-of-type{page-break-before:auto}}
"""
