"""HTML primitives of the report: a section, a table, a "not available" note, the page, and number formats.

Everything here escapes what it is given; sections build on these and never write raw text into the page.
The numbers follow issue 21: percentages to two significant figures, absolute differences with their CI,
never a relative change against a reference near zero.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#1d2733;line-height:1.4}
h1{font-size:1.7em;margin-bottom:.1em}h2{border-bottom:1px solid #d5dbe3;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;max-width:100%}td,th{border:1px solid #d5dbe3;padding:.25em .6em;
text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f1f4f8}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.note{color:#5b6b7c}
.na{background:#fff8e6;border:1px solid #f0d58c;padding:.5em .8em}code{background:#f1f4f8;padding:0 .2em;
overflow-wrap:anywhere}.answers{background:#f3f8f4;border:1px solid #b9d8c2;padding:.4em 1.2em;border-radius:6px}
.answers li{margin:.35em 0}.badge{display:inline-block;background:#fde7c8;border-radius:4px;padding:0 .4em;
font-size:.8em;color:#7a4a00}figure{margin:1em 0;max-width:100%}figcaption{color:#5b6b7c;font-size:.9em}
svg{max-width:100%;height:auto}img{max-width:100%;height:auto}.figs{display:flex;flex-wrap:wrap;gap:1.5em}
.figs figure{flex:1 1 520px;min-width:0}.visit{border-left:3px solid #b9c6d6;padding:.2em .8em;margin:.6em 0}
.visit ol{margin:.2em 0;padding-left:1.4em}.visit .q{color:#6b3fa0}.visit .p{color:#5b6b7c;font-size:.85em}
"""


@dataclass
class Section:
    title: str
    body: str  # HTML


def esc(value: Any) -> str:
    return html.escape(str(value))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"
            return f'<td class="n">{text}</td>'
        return f"<td>{esc(value)}</td>"

    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cap(text: str) -> str:
    """The first letter upper-cased, the rest kept ("LLM" stays "LLM", unlike str.capitalize)."""
    return text[:1].upper() + text[1:]


def not_available(what: str, why: str) -> str:
    return f'<p class="na">{esc(what)}: not available here ({esc(why)}).</p>'


def pct(x: float | None) -> str:
    """A share as a percentage to two significant figures (26%, 4.1%, 0.52%, 100%)."""
    if x is None:
        return "-"
    v = 100 * x
    if abs(v) >= 10:
        return f"{v:.0f}%"
    return f"{float(f'{v:.2g}'):g}%"


def pct_ci(x: dict[str, Any] | None) -> str:
    if not x or x.get("mean") is None:
        return ""
    return f"{pct(x['mean'])} [{pct(x['ci'][0])}, {pct(x['ci'][1])}]"


def num_ci(x: dict[str, Any] | None, fmt: str = "+.4f") -> str:
    """An absolute figure with its 95% CI: `+0.0123 [+0.0080, +0.0170]`."""
    if not x or x.get("mean") is None:
        return ""
    return f"{x['mean']:{fmt}} [{x['ci'][0]:{fmt}}, {x['ci'][1]:{fmt}}]"


def render(title: str, sections: Sequence[Section], notes: Sequence[str] = ()) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"]
    parts.append("<meta name='viewport' content='width=device-width, initial-scale=1'>")
    parts.append(f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>")
    parts += [f'<p class="note">{n}</p>' for n in notes]  # notes are HTML made by the caller from escaped parts
    for section in sections:
        parts.append(f"<section><h2>{esc(section.title)}</h2>{section.body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
