"""Charts as inline SVG: matplotlib figures serialised to text, no JavaScript.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot, so nothing is
left in pyplot's registry (no ``close`` to forget) and nothing needs a display.
"""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Callable
from typing import Any, Literal

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.typing import RcKeyType

from pipeline.reports.html import esc

log = logging.getLogger(__name__)

STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, found by a page search
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.formatter.useoffset": False,  # tick labels say the value, not "+3.219e-2"
    "savefig.dpi": 100,  # for the rasterised layers only (dense scatters)
}
MODEL, BENCHMARK, BAD, WARN, GOOD = "#1f77b4", "#7f7f7f", "#d62728", "#e69500", "#2e8b57"
STATUS = {"ok": GOOD, "warn": WARN, "alert": BAD, "insufficient": BENCHMARK}
INCH = 72.0  # SVG points per inch
_SIZE = re.compile(r'<svg([^>]*?)\s+width="([\d.]+)pt"\s+height="([\d.]+)pt"')
_PATH = re.compile(r' d="[^"]*"')
_DECIMALS = re.compile(r"(\d+\.\d)\d+")


def figure(name: str, caption: str, draw: Callable[[], Figure]) -> str:
    """A chart of the page: ``draw`` builds the figure, inlined as SVG with its caption.

    A chart that fails to draw becomes a note naming the error (and a logged warning): a
    drawing bug must not fail the job after it measured and registered everything. The
    browser test fails on such a note.
    """
    try:
        # The salt makes the SVG ids unique per chart and the same from run to run.
        with rc_context(STYLE), rc_context({"svg.hashsalt": name}):
            svg = to_svg(draw(), caption)
    except Exception as exc:  # any drawing error: the page says so instead of failing the job
        log.warning("report chart %s not drawn", name, exc_info=True)
        text = f"chart {name} not drawn: {type(exc).__name__}: {exc}"
        return f'<figure class="chart failed" data-chart="{esc(name)}"><p>{esc(text)}</p></figure>'
    return (
        f'<figure class="chart" data-chart="{esc(name)}">{svg}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def new(
    width: float, height: float, layout: Literal["constrained"] | None = "constrained"
) -> Figure:
    """An empty figure, in inches (the page scales it down to the column it sits in).

    Constrained layout fits the labels; a grid of many small charts places them by hand
    (``layout=None``), as laying out dozens of axes costs seconds.
    """
    return Figure(figsize=(width, height), layout=layout)


def to_svg(fig: Figure, label: str) -> str:
    """The figure as an ``<svg>`` element for inline HTML: no XML prolog or metadata, sized
    by CSS up to its natural width, path coordinates to 1 decimal (a tenth of a point)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    svg = text[text.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.DOTALL)
    svg = _PATH.sub(lambda m: _DECIMALS.sub(r"\1", m.group(0)), svg)
    match = _SIZE.match(svg)
    if match is None:
        return svg
    attrs, width = match.group(1), match.group(2)
    tag = (
        f'<svg{attrs} style="max-width:{float(width) / INCH * 96:.0f}px" role="img" '
        f'aria-label="{esc(html.unescape(re.sub("<[^>]+>", "", label)))}"'
    )
    return tag + svg[match.end() :]


def log_growth(ax: Axes) -> None:
    """A log-scale growth axis labelled in plain numbers (0.5, 1, 2, 5), not powers of ten."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if _first_digit(v) in (2, 5) else "")
    )


def dates(ax: Axes) -> None:
    """A date x axis with few, short labels (2022, Mar, May...), whatever the span."""
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _first_digit(value: float) -> int:
    return int(f"{value:e}"[0]) if value > 0 else 0
