"""The page: HTML building blocks, the numbers tied to their JSON, and the stylesheet.

Every number goes through :meth:`At.num`: the value is read from the typed result at a JSON
pointer (RFC 6901) and written with that pointer and its exact value, so the page shows what
the JSON file holds and a browser test can check it does.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text

log = logging.getLogger(__name__)
NA = "n/a"  # an undefined value (null in the JSON)


def esc(text: object) -> str:
    """``text`` as HTML text (quotes too, so it is safe in attributes)."""
    return html.escape(str(text), quote=True)


def fmt(value: Any, spec: str) -> str:
    """``value`` as the page shows it: a format spec, or ``%`` + spec (a share x 100)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if spec.startswith("%"):
        return f"{value * 100:{spec[1:]}}%"
    return f"{value:{spec}}"


def _pointer_key(key: str | int) -> str:
    # RFC 6901: "~" and "/" inside a key are escaped.
    return str(key).replace("~", "~0").replace("/", "~1")


def _raw(value: Any) -> str:
    """The exact value for ``data-value``: repr keeps every digit of a float."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class At:
    """A typed result and its JSON pointer in the file the page is checked against."""

    obj: Any
    pointer: str = ""

    def at(self, *keys: str | int) -> At:
        """The child at ``keys`` (attribute names, mapping keys or list indexes)."""
        obj, pointer = self.obj, self.pointer
        for key in keys:
            if isinstance(obj, dict):
                obj = obj[key]
            elif isinstance(obj, list | tuple):
                obj = obj[int(key)]
            else:
                obj = getattr(obj, str(key))
            pointer = f"{pointer}/{_pointer_key(key)}"
        return At(obj, pointer)

    def num(self, *keys: str | int, spec: str = ".4f") -> str:
        """The value at ``keys``, formatted, in a span carrying its pointer and exact value."""
        child = self.at(*keys)
        pointer, value = esc(child.pointer), esc(_raw(child.obj))
        return (
            f'<span class="num" data-json="{pointer}" data-value="{value}" data-fmt="{esc(spec)}">'
            f"{esc(fmt(child.obj, spec))}</span>"
        )

    def text(self, *keys: str | int) -> str:
        """A string value (a status, a reason) the same way: pointer, value, text."""
        return self.num(*keys, spec="s")


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    caption: str = "",
    classes: Sequence[str] = (),
) -> str:
    """A table of ready HTML cells; ``header`` is plain text, ``classes`` style the rows
    (aligned with ``rows``; the stylesheet knows ``mean``, ``pooled`` and ``winner``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(classes[i])}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    cap = f"<caption>{caption}</caption>" if caption else ""
    rows_html = "".join(body)
    # Wrapped, so a wide table scrolls inside its section instead of running over the page.
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table></div>"
    )


def kpis(items: Iterable[tuple[str, str]]) -> str:
    """Headline figures: a label above each value (ready HTML)."""
    cells = "".join(f'<div class="kpi"><div>{esc(k)}</div><b>{v}</b></div>' for k, v in items)
    return f'<div class="kpis">{cells}</div>'


def section(anchor: str, title: str, body: str, intro: str = "") -> str:
    """A titled section with an anchor for the navigation bar."""
    lead = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{lead}{body}</section>'


def note(text: str) -> str:
    """A grey line saying why something is not shown."""
    return f'<p class="note">{text}</p>'


def guarded(what: str, build: Callable[[], str]) -> str:
    """``build()``, or, if it raises, a note saying what was not drawn and why (logged with
    its traceback). A page is a view of the JSON beside it, written before it: drawing it must
    never fail the job that measured (and maybe registered) everything. The browser test
    fails on such a note (class ``failed``)."""
    try:
        return build()
    except Exception as exc:  # any bug in a view: the page says so, the job goes on
        log.exception("report.html: %s not drawn", what)
        text = f"{what} not drawn: {type(exc).__name__}: {exc}"
        return f'<p class="note failed">{esc(text)}</p>'


def grid(*cells: str) -> str:
    """Cells side by side (two columns on a wide screen)."""
    return '<div class="grid">' + "".join(f"<div>{c}</div>" for c in cells) + "</div>"


def page(title: str, banner: str, nav: Sequence[tuple[str, str]], body: str, foot: str) -> str:
    """The whole document: no script, no external resource."""
    links = " ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"{banner}<nav>{links}</nav><main>{body}</main><footer>{foot}</footer></body></html>"
    )


def banner(status: str, title: str, lines: Sequence[str], figures: str = "") -> str:
    """The verdict on top: coloured by ``status`` (ok, warn, alert, ...)."""
    text = "".join(f"<p>{line}</p>" for line in lines)
    return f'<header class="verdict s-{esc(status)}"><h1>{title}</h1>{text}{figures}</header>'


def write_page(path: Path, document: str) -> Path:
    """Write the page atomically (a crash leaves the old page or the new one, never half)."""
    return atomic_write_text(path, document)


# Readable at 1280 px without zooming; colours name statuses, tables stay compact.
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1240px;margin:0 auto;padding:0 20px 40px}
header.verdict{padding:14px 20px 10px;border-bottom:4px solid #888;background:#fff}
header.verdict h1{font-size:22px;margin:0 0 4px}
header.verdict p{margin:2px 0;max-width:1200px}
.s-ok,.s-promoted{border-color:#2e8b57!important}.s-warn,.s-challenger{border-color:#e69500!important}
.s-alert{border-color:#d62728!important}.s-insufficient,.s-unavailable{border-color:#888!important}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;
background:#888}.badge.s-ok{background:#2e8b57}.badge.s-warn{background:#e69500}
.badge.s-alert{background:#d62728}
nav{position:sticky;top:0;background:#1b1f24;padding:6px 20px;z-index:2}
nav a{color:#e8eaed;margin-right:16px;text-decoration:none;font-size:13px}
section{background:#fff;margin:16px 0;padding:6px 18px 14px;border-radius:6px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:18px;margin:10px 0 6px}h3{font-size:15px;margin:12px 0 4px}
p.intro{color:#444;margin:2px 0 8px}p.note{color:#666;font-style:italic}
.kpis{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.kpi{background:#f0f2f5;border-radius:6px;padding:4px 10px;min-width:110px}
.kpi div{font-size:12px;color:#555}.kpi b{font-size:17px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
caption{text-align:left;font-weight:600;padding:2px 0}
th,td{padding:3px 9px;border-bottom:1px solid #e3e5e8;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal;min-width:130px}
th{background:#f0f2f5}.scroll{overflow-x:auto;max-width:100%}
tr.pooled td{font-weight:600;background:#eef4ff}tr.mean td{background:#f7f7f7}
tr.winner td{font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px}
figure.chart{margin:6px 0 12px}figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-size:12.5px;color:#444;margin-top:2px}
footer{color:#666;font-size:12px;text-align:center;padding:10px}
"""
