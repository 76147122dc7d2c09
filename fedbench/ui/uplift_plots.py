"""The charts of "what does the partner add": the federated and the guest-only model's curves overlaid.

Pure functions of the `compare` component's report (`fedbench.ml.uplift.compare_scores`), whose curves already
hold only points of at least `min_bucket` rows each, so a chart never shows a smaller group. Each returns a
`matplotlib.figure.Figure` built without pyplot, as `fedbench.ui.plots` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fedbench.ui.errors import PlotError

__all__ = ["MODELS", "draw_gain", "draw_ks", "draw_lift", "draw_roc", "uplift_chart", "uplift_panel"]

MODELS = (("federated", "with the partner", "#1f6feb"), ("guest_only", "your features alone", "#e36209"))
"""The two models of a report: key, how a chart names it, colour."""
_GREY = "#8c959f"


def _part(report: Mapping[str, Any], key: str) -> dict[str, Any]:
    part = report.get(key)
    if not isinstance(part, dict) or not isinstance(part.get("curves"), dict):
        raise PlotError(f"the comparison report has no {key.replace('_', '-')} model's curves")
    return part


def _curve(part: Mapping[str, Any], name: str) -> np.ndarray:
    values = np.asarray(part["curves"].get(name, []), dtype=float)
    if values.size < 2:
        raise PlotError(f"the comparison report's {name} curve has fewer than two points")
    return values


def draw_roc(ax: Axes, report: Mapping[str, Any]) -> None:
    """Both ROC curves with their AUCs, and the chance diagonal."""
    for key, words, colour in MODELS:
        part = _part(report, key)
        ax.plot(
            _curve(part, "fpr"),
            _curve(part, "tpr"),
            color=colour,
            lw=2,
            label=f"{words} (AUC {part['auc']:.3f})",
        )
    ax.plot([0, 1], [0, 1], color=_GREY, lw=1, ls="--", label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")
    ax.set_title("ROC curves")
    ax.legend(loc="lower right", frameon=False, fontsize="small")


def draw_ks(ax: Axes, report: Mapping[str, Any]) -> None:
    """Each model's gap between the shares of positives and negatives taken, by share of rows taken."""
    for key, words, colour in MODELS:
        part = _part(report, key)
        gap = _curve(part, "tpr") - _curve(part, "fpr")
        ax.plot(_curve(part, "population"), gap, color=colour, lw=2, label=f"{words} (KS {part['ks']:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="Share of rows (highest scores first)", ylabel="TPR - FPR")
    ax.set_title("KS curves")
    ax.legend(loc="upper right", frameon=False, fontsize="small")


def draw_gain(ax: Axes, report: Mapping[str, Any]) -> None:
    """Both cumulative gain curves and the random baseline."""
    for key, words, colour in MODELS:
        part = _part(report, key)
        ax.plot(_curve(part, "population"), _curve(part, "gain"), color=colour, lw=2, label=words)
    ax.plot([0, 1], [0, 1], color=_GREY, lw=1, ls="--", label="random")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="Share of rows targeted", ylabel="Share of positives")
    ax.set_title("Cumulative gain")
    ax.legend(loc="lower right", frameon=False, fontsize="small")


def draw_lift(ax: Axes, report: Mapping[str, Any]) -> None:
    """Both models' lift per bucket, side by side (every bucket holds at least `min_bucket` rows)."""
    width = 0.4
    for i, (key, words, colour) in enumerate(MODELS):
        table = _part(report, key).get("lift") or []
        if not table:
            raise PlotError("the comparison report has no lift table")
        positions = np.arange(1, len(table) + 1)
        lifts = [float(row["lift"]) for row in table]
        ax.bar(positions + (i - 0.5) * width, lifts, width=width, color=colour, alpha=0.85, label=words)
    ax.axhline(1.0, color=_GREY, lw=1, ls="--")
    ax.set(xlabel="Bucket (highest scores first)", ylabel="Lift", xticks=positions)
    ax.set_title("Lift by bucket")
    ax.legend(loc="upper right", frameon=False, fontsize="small")


_DRAW = {"roc": draw_roc, "ks": draw_ks, "lift": draw_lift, "gain": draw_gain}


def uplift_chart(report: Mapping[str, Any], which: str) -> Figure:
    """One overlaid chart of a comparison report: "roc", "ks", "lift" or "gain"."""
    if which not in _DRAW:
        raise PlotError(f"there is no {which!r} chart; choose one of {sorted(_DRAW)}")
    fig = Figure(figsize=(4.6, 3.8), layout="constrained")
    _DRAW[which](fig.subplots(), report)
    return fig


def uplift_panel(
    report: Mapping[str, Any], figure: Figure | None = None, rect: tuple[float, ...] = ()
) -> Figure:
    """The four charts in a 2 x 2 grid: in a new figure, or in `rect` (left, bottom, width, height) of `figure`."""
    fig = figure or Figure(figsize=(9.2, 7.6), layout="constrained")
    area = fig.add_gridspec(2, 2, **_bounds(rect)) if rect else fig.add_gridspec(2, 2)
    for cell, draw in zip((area[0, 0], area[0, 1], area[1, 0], area[1, 1]), _DRAW.values(), strict=True):
        draw(fig.add_subplot(cell), report)
    return fig


def _bounds(rect: tuple[float, ...]) -> dict[str, float]:
    left, bottom, width, height = rect
    return {
        "left": left,
        "bottom": bottom,
        "right": left + width,
        "top": bottom + height,
        "hspace": 0.45,
        "wspace": 0.3,
    }
