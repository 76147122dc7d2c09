"""Charts inside a dashboard: a `fedbench.ui.plots` Figure as an inline PNG image, or a sentence why not.

An `<img>` with a `data:` URI goes in an HTML widget, so a chart needs no output area, shows the same in
Voila and JupyterLab, and a test reads it from the widget's value. A chart that cannot be drawn from the data
(one class only, no scores...) becomes a muted sentence, never a traceback.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

from fedbench.ui.errors import PlotError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["chart", "chart_grid", "figure_html"]

DPI = 80


def figure_html(figure: Figure, alt: str, css: str = "") -> str:
    """The figure as an `<img>` (PNG inside the page), with `alt` text and the classes `fb-plot` and `css`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="fb-plot {escape(css)}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def chart(draw: Callable[[], Figure], alt: str, css: str = "") -> str:
    """Draw a chart; when its data cannot draw it, say so in words instead."""
    try:
        return figure_html(draw(), alt, css)
    except PlotError as exc:
        return f'<div class="fb-muted {escape(css)}">{escape(alt)}: {escape(str(exc))}</div>'


def chart_grid(charts: list[str]) -> str:
    """Charts side by side, wrapping onto new lines."""
    cells = "".join(f'<div class="fb-plot-cell">{c}</div>' for c in charts)
    return f'<div class="fb-plots">{cells}</div>'
