"""The charts of fedbench's dashboards and monitors, as pure functions of data that return Figures.

Each function takes arrays or DataFrames and returns a `matplotlib.figure.Figure` built without pyplot, so
it draws the same in a notebook, a Voila dashboard, a background thread or a test (no global state, no
backend choice). In a notebook a returned Figure shows as an image; save one with `fig.savefig(path)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fedbench.ml.health import REFINE_METRIC
from fedbench.ui.errors import PlotError

__all__ = [
    "compare_runs",
    "confusion_matrix",
    "feature_importance",
    "iv_chart",
    "ks_curve",
    "lift_gain_chart",
    "loss_curve",
    "roc_curve",
    "score_distribution",
    "tree_view",
]

_BLUE, _ORANGE, _GREY, _GREEN, _RED = "#1f6feb", "#e36209", "#8c959f", "#2da44e", "#cf222e"


def _show_figures_as_png() -> None:
    """In a running IPython kernel, show a Figure returned by a cell as an image (no `%matplotlib` needed)."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png"))


_show_figures_as_png()


def _binary(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    s = np.asarray(y_score, dtype=float).ravel()
    if y.size != s.size:
        raise PlotError(f"labels and scores differ in length: {y.size} labels, {s.size} scores")
    if y.size == 0:
        raise PlotError("no labels and scores were given")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise PlotError(f"labels must be 0 and 1, got {sorted(values)[:5]}")
    y = y.astype(int)
    if y.min() == y.max():
        raise PlotError("both classes (0 and 1) must be present to draw this chart")
    if not np.all(np.isfinite(s)):
        raise PlotError("scores contain missing or infinite values")
    return y, s


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[ends]
    fps = ends + 1 - tps
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def roc_curve(y_true: Any, y_score: Any, *, label: str = "model") -> Figure:
    """The ROC curve of scores against 0/1 labels, with the chance diagonal; the AUC is in the title."""
    y, s = _binary(y_true, y_score)
    fpr, tpr = _roc_points(y, s)
    auc = _area(fpr, tpr)
    fig, (ax,) = _figure(4.8, 4.2)
    ax.plot(fpr, tpr, color=_BLUE, lw=2, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color=_GREY, lw=1, ls="--", label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")
    ax.set_title(f"ROC curve (AUC {auc:.3f})")
    ax.legend(loc="lower right", frameon=False)
    return fig


def ks_curve(y_true: Any, y_score: Any) -> Figure:
    """Cumulative share of positives and negatives by score rank; the KS statistic is the largest gap."""
    y, s = _binary(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    y = y[order]
    population = np.arange(1, y.size + 1) / y.size
    positives = np.cumsum(y) / y.sum()
    negatives = np.cumsum(1 - y) / (1 - y).sum()
    gap = positives - negatives
    at = int(np.argmax(np.abs(gap)))
    ks = float(abs(gap[at]))
    fig, (ax,) = _figure(5.2, 4.0)
    ax.plot(population, positives, color=_BLUE, lw=2, label="positives (cumulative)")
    ax.plot(population, negatives, color=_ORANGE, lw=2, label="negatives (cumulative)")
    ax.plot(
        [population[at]] * 2,
        [negatives[at], positives[at]],
        color=_RED,
        lw=1.5,
        ls="--",
        label=f"KS {ks:.3f}",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="Share of population (highest scores first)", ylabel="Share")
    ax.set_title(f"KS = {ks:.3f}")
    ax.legend(loc="lower right", frameon=False)
    return fig


def lift_gain_chart(y_true: Any, y_score: Any, *, bins: int = 10) -> Figure:
    """Cumulative gain (with the random baseline) and lift per score bucket (deciles by default)."""
    y, s = _binary(y_true, y_score)
    if not 2 <= bins <= y.size:
        raise PlotError(f"bins must be from 2 to the number of rows ({y.size}), got {bins}")
    order = np.argsort(-s, kind="mergesort")
    y = y[order]
    edges = np.linspace(0, y.size, bins + 1).round().astype(int)
    captured = np.array([y[:e].sum() for e in edges]) / y.sum()
    shares = edges / y.size
    rate = y.mean()
    lift = np.array(
        [y[a:b].mean() / rate if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    fig, (gain_ax, lift_ax) = _figure(9.0, 3.8, ncols=2)
    gain_ax.plot(shares, captured, color=_BLUE, lw=2, marker="o", ms=3, label="model")
    gain_ax.plot([0, 1], [0, 1], color=_GREY, lw=1, ls="--", label="random")
    gain_ax.set(
        xlim=(0, 1), ylim=(0, 1.01), xlabel="Share of population targeted", ylabel="Share of positives"
    )
    gain_ax.set_title("Cumulative gain")
    gain_ax.legend(loc="lower right", frameon=False)
    positions = np.arange(1, bins + 1)
    lift_ax.bar(positions, lift, color=_BLUE, alpha=0.85)
    lift_ax.axhline(1.0, color=_GREY, lw=1, ls="--")
    lift_ax.set(xlabel="Bucket (highest scores first)", ylabel="Lift", xticks=positions)
    lift_ax.set_title(f"Lift by bucket (top bucket {lift[0]:.2f}x)")
    return fig


def _class_name(value: Any) -> str:
    """A class as a person writes it: 1 rather than 1.0."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def confusion_matrix(
    y_true: Any, y_pred: Any, *, labels: Sequence[Any] | None = None, normalize: bool = False
) -> Figure:
    """Counts (or row shares with `normalize`) of each true class against each predicted class."""
    truth = np.asarray(y_true).ravel()
    pred = np.asarray(y_pred).ravel()
    if truth.size != pred.size or truth.size == 0:
        raise PlotError(
            f"need as many predictions as labels (got {truth.size} labels, {pred.size} predictions)"
        )
    classes = list(labels) if labels is not None else sorted(set(truth.tolist()) | set(pred.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)))
    for t, p in zip(truth.tolist(), pred.tolist(), strict=True):
        if t in index and p in index:
            counts[index[t], index[p]] += 1
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    accuracy = float(np.trace(counts) / max(counts.sum(), 1))
    fig, (ax,) = _figure(1.6 + 1.1 * len(classes), 1.3 + 1.0 * len(classes))
    ax.imshow(shown, cmap="Blues", vmin=0)
    limit = shown.max() / 2 if shown.size else 0
    for (i, j), value in np.ndenumerate(shown):
        text = f"{value:.2f}" if normalize else f"{int(value):,}"
        ax.text(j, i, text, ha="center", va="center", color="white" if value > limit else "black")
    ticks = range(len(classes))
    names = [_class_name(c) for c in classes]
    ax.set(xticks=ticks, yticks=ticks, xticklabels=names, yticklabels=names)
    ax.set(xlabel="Predicted", ylabel="Actual")
    ax.set_title(f"Confusion matrix (accuracy {accuracy:.1%})")
    return fig


def _series(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if metrics is None or len(metrics) == 0:
        return {}
    frame = pd.DataFrame(metrics).copy()
    missing = {"name", "value"} - set(frame.columns)
    if missing:
        raise PlotError(f"a metrics table needs columns name and value (missing: {sorted(missing)})")
    if "iteration" not in frame.columns:
        frame["iteration"] = np.nan
    frame["iteration"] = pd.to_numeric(frame["iteration"], errors="coerce")
    groups = ["name", "party"] if "party" in frame.columns and frame["party"].nunique() > 1 else ["name"]
    series = {}
    for key, part in frame.groupby(groups, sort=False):
        parts = key if isinstance(key, tuple) else (key,)
        part = part.reset_index(drop=True)
        x = part["iteration"].where(part["iteration"].notna(), pd.Series(np.arange(len(part)), dtype=float))
        series[" · ".join(str(p) for p in parts)] = pd.DataFrame(
            {"x": x, "value": part["value"].astype(float)}
        )
    return series


def loss_curve(
    metrics: pd.DataFrame, *, title: str = "Metrics by iteration", refine_from: int | None = None
) -> Figure:
    """One line per metric (and party, if several) over iterations: a run's `metrics` table as is.

    The loss panels mark where refine epochs began (`refine_from`, or a `REFINE_METRIC` row of the table), so a
    step up there reads as the change of loss it is, not as a divergence.
    """
    frame = pd.DataFrame(metrics)
    if "name" in frame.columns:
        marks = frame[frame["name"].astype(str) == REFINE_METRIC]
        if refine_from is None and len(marks):
            refine_from = int(pd.to_numeric(marks["value"]).min())
        frame = frame[frame["name"].astype(str) != REFINE_METRIC]
    series = _series(frame)
    if not series:
        raise PlotError("no metric values to plot yet")
    names = list(dict.fromkeys(str(n) for n in frame["name"]))
    ncols = min(len(names), 3)
    fig, axes = _figure(4.2 * ncols, 3.2, ncols=ncols)
    for i, name in enumerate(names[:ncols]):
        ax = axes[i]
        for label, points in series.items():
            if label == name or label.startswith(f"{name} · "):
                ax.plot(
                    points["x"],
                    points["value"],
                    marker="o" if len(points) < 30 else None,
                    ms=3,
                    lw=1.8,
                    label=label,
                )
        ax.set(xlabel="Iteration", ylabel=name)
        ax.set_title(name)
        if len(ax.lines) > 1:
            ax.legend(frameon=False)
        if refine_from is not None and name.startswith("loss"):
            ax.axvline(refine_from - 0.5, color=_GREY, ls="--", lw=1)
            ax.text(
                refine_from - 0.5,
                0.98,
                " refine: logistic loss",
                transform=ax.get_xaxis_transform(),
                color=_GREY,
                fontsize=8,
                va="top",
            )
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def iv_chart(iv: Mapping[str, float] | pd.Series | pd.DataFrame, *, top: int = 20) -> Figure:
    """Information value per feature as sorted horizontal bars, coloured by the usual strength bands."""
    if isinstance(iv, pd.DataFrame):
        if not {"feature", "iv"} <= set(iv.columns):
            raise PlotError("an IV table needs columns feature and iv")
        values = pd.Series(iv["iv"].to_numpy(dtype=float), index=iv["feature"].astype(str))
    else:
        values = pd.Series(dict(iv) if isinstance(iv, Mapping) else iv, dtype=float)
    if values.empty:
        raise PlotError("no information values to plot")
    values = values.sort_values(ascending=False).head(top).iloc[::-1]
    colors = [_GREY if v < 0.02 else _ORANGE if v < 0.1 else _BLUE if v < 0.3 else _GREEN for v in values]
    fig, (ax,) = _figure(6.0, 1.0 + 0.32 * len(values))
    ax.barh(values.index, values.to_numpy(), color=colors)
    for cut, word in ((0.02, "weak"), (0.1, "medium"), (0.3, "strong")):
        if values.max() >= cut * 0.8:
            ax.axvline(cut, color=_GREY, lw=0.8, ls=":")
            ax.text(cut, len(values) - 0.4, f" {word}", color=_GREY, fontsize=8, va="bottom")
    ax.set(xlabel="Information value")
    ax.set_title("Information value by feature")
    return fig


def score_distribution(scores: Any, y_true: Any = None, *, bins: int = 30) -> Figure:
    """A histogram of scores; with labels, one histogram per class so their overlap shows."""
    s = np.asarray(scores, dtype=float).ravel()
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise PlotError("no scores to plot")
    fig, (ax,) = _figure(5.6, 3.6)
    edges = np.histogram_bin_edges(s, bins=bins)
    if y_true is None:
        ax.hist(s, bins=edges, color=_BLUE, alpha=0.85)
    else:
        y, s = _binary(y_true, scores)
        ax.hist(s[y == 0], bins=edges, color=_ORANGE, alpha=0.6, label=f"negatives ({int((y == 0).sum()):,})")
        ax.hist(s[y == 1], bins=edges, color=_BLUE, alpha=0.6, label=f"positives ({int((y == 1).sum()):,})")
        ax.legend(frameon=False)
    ax.set(xlabel="Score", ylabel="Rows")
    ax.set_title("Score distribution")
    return fig


def _final(metrics: pd.DataFrame | Mapping[str, float]) -> pd.Series:
    if isinstance(metrics, Mapping):
        return pd.Series(dict(metrics), dtype=float)
    frame = pd.DataFrame(metrics)
    if frame.empty:
        return pd.Series(dtype=float)
    if not {"name", "value"} <= set(frame.columns):
        raise PlotError("a metrics table needs columns name and value")
    return frame.groupby("name", sort=False)["value"].last().astype(float)


def compare_runs(
    a: pd.DataFrame | Mapping[str, float],
    b: pd.DataFrame | Mapping[str, float],
    *,
    labels: tuple[str, str] = ("Run A", "Run B"),
    most: int = 6,
) -> Figure:
    """Two runs side by side: one small chart per metric (its own scale, so a huge loss does not flatten an
    AUC), the final values as paired bars and, when both runs have them, the curves by iteration beneath."""
    first, second = _final(a), _final(b)
    names = list(dict.fromkeys([*first.index, *second.index]))[:most]
    if not names:
        raise PlotError("neither run has metrics to compare")
    curves = [_series(m) for m in (a, b) if isinstance(m, pd.DataFrame)]
    with_curves = len(curves) == 2 and all(any(len(p) > 1 for p in c.values()) for c in curves)
    rows = 2 if with_curves else 1
    fig = Figure(figsize=(max(4.0, 2.4 * len(names)), 2.9 * rows + 0.5), layout="constrained")
    grid = fig.subplots(rows, len(names), squeeze=False)
    colors = (_BLUE, _ORANGE)
    for column, name in enumerate(names):
        ax = grid[0][column]
        heights = [float(values.get(name, np.nan)) for values in (first, second)]
        bars = ax.bar([0, 1], np.nan_to_num(heights), 0.7, color=colors, label=list(labels))
        ax.bar_label(bars, labels=["–" if np.isnan(h) else f"{h:.3g}" for h in heights], fontsize=8)
        ax.set(xticks=[], title=name)
        ax.margins(y=0.15)
        if with_curves:
            curve_ax = grid[1][column]
            for series, color in zip(curves, colors, strict=True):
                for key, points in series.items():
                    if (key == name or key.startswith(f"{name} · ")) and len(points) > 1:
                        curve_ax.plot(points["x"], points["value"], color=color, lw=1.8)
            curve_ax.set(xlabel="Iteration", title=f"{name} by iteration")
            curve_ax.grid(alpha=0.3)
    grid[0][0].set_ylabel("Final value")
    fig.legend(
        handles=list(grid[0][0].patches),
        labels=list(labels),
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    fig.suptitle(f"{labels[0]} vs {labels[1]}")
    return fig


HOST_PREFIX = "host:"
"""How a boosted-tree model names a host feature for the guest: its anonymous id (`host:0`, `host:1`, ...)."""


def _is_host(name: str) -> bool:
    return name.startswith(HOST_PREFIX)


def feature_importance(
    importance: Mapping[str, Sequence[float]],
    feature_names: Sequence[str],
    *,
    kind: str = "gain",
    top: int = 20,
) -> Figure:
    """A boosted-tree model's feature importance as sorted horizontal bars: `kind` "gain" (the summed gain of
    the splits on each feature) or "split" (how many splits use it). Features no split uses are left out;
    host features (`host:0`...) are drawn in their own colour, by their anonymous id."""
    if kind not in ("gain", "split"):
        raise PlotError(f"kind must be 'gain' or 'split', got {kind!r}")
    if top < 1:
        raise PlotError(f"top must be at least 1, got {top}")
    values = importance.get(kind) if isinstance(importance, Mapping) else None
    if values is None:
        raise PlotError(f"the importance has no {kind!r} values (it has {sorted(importance)})")
    numbers = np.asarray(values, dtype=float)
    names = [str(n) for n in feature_names]
    if numbers.shape != (len(names),):
        raise PlotError(
            f"the importance has {numbers.size} values but there are {len(names)} feature names; "
            "pass the model's feature_names with its importance"
        )
    used = pd.Series(numbers, index=names)
    used = used[used > 0]
    if used.empty:
        raise PlotError("no split uses any feature: every tree is a single leaf")
    shown = used.sort_values(ascending=False, kind="mergesort").head(top).iloc[::-1]
    colors = [_ORANGE if _is_host(n) else _BLUE for n in shown.index]
    fig, (ax,) = _figure(6.0, 1.2 + 0.32 * len(shown))
    ax.barh(list(shown.index), shown.to_numpy(), color=colors)
    ax.set(xlabel="Summed gain of its splits" if kind == "gain" else "Splits using it")
    what = "gain" if kind == "gain" else "number of splits"
    ax.set_title(f"Feature importance by {what} ({len(used)} of {len(names)} features used)")
    if any(_is_host(n) for n in shown.index):
        from matplotlib.patches import Patch

        ax.legend(
            handles=[
                Patch(color=_BLUE, label="your features"),
                Patch(color=_ORANGE, label="partner's (anonymous ids)"),
            ],
            loc="lower right",
            frameon=False,
        )
    return fig


def _tree_arrays(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    needed = ("feature", "bin", "left", "right", "value")
    missing = [n for n in needed if n not in tree]
    if missing:
        raise PlotError(f"a tree needs the node fields {list(needed)} (missing: {missing})")
    arrays = {n: np.asarray(tree[n]) for n in (*needed, "count", "default_left") if n in tree}
    size = len(arrays["feature"])
    if size == 0 or any(len(a) != size for a in arrays.values()):
        raise PlotError("a tree's node fields must have one value per node, and at least one node")
    return arrays


def _plain(value: float) -> str:
    """A threshold as a person writes it: 26,000 rather than 2.6e+04, 0.1706 rather than 0.170634."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _split_text(name: str, bin_: int, edges: Sequence[Sequence[float]] | None, feature: int) -> str:
    """An inner node's rule: "name < value" for a feature whose cut points we hold, else "name: bin <= k"."""
    if edges is not None and feature < len(edges) and not _is_host(name):
        cuts = edges[feature]
        return f"{name} < {_plain(float(cuts[bin_]))}" if bin_ < len(cuts) else f"{name} present"
    return f"{name}: bin ≤ {bin_}"


def tree_view(
    tree_dict: Mapping[str, Any],
    feature_names: Sequence[str],
    *,
    max_depth: int = 3,
    edges: Sequence[Sequence[float]] | None = None,
) -> Figure:
    """One boosted tree drawn top-down to `max_depth` levels: at each inner node its split feature (a host
    feature by its anonymous id) and bin threshold, "yes" (left) for rows at or below it; at each leaf its
    value; the rows reaching each node when the tree records them. `edges`: the cut points of the first
    features (the guest's binner), to show their thresholds as values; deeper levels are summarised."""
    if max_depth < 1:
        raise PlotError(f"max_depth must be at least 1, got {max_depth}")
    nodes = _tree_arrays(tree_dict)
    names = [str(n) for n in feature_names]
    feature, left, right = nodes["feature"].astype(int), nodes["left"].astype(int), nodes["right"].astype(int)
    if np.any(feature >= len(names)):
        raise PlotError(
            f"the tree splits on feature {int(feature.max())} but only {len(names)} names were given"
        )
    placed: dict[int, tuple[float, int]] = {}
    slots = [0]

    def place(node: int, depth: int) -> float:
        """In-order x position of each node shown (leaves side by side, parents centred above)."""
        if feature[node] < 0 or depth == max_depth:
            x = float(slots[0])
            slots[0] += 1
        else:
            x = (place(int(left[node]), depth + 1) + place(int(right[node]), depth + 1)) / 2
        placed[node] = (x, depth)
        return x

    place(0, 0)
    width, levels = slots[0], max(d for _, d in placed.values()) + 1
    fig, (ax,) = _figure(max(3.0, 1.5 * width), 0.4 + 1.25 * levels)
    ax.set_axis_off()
    ax.set(xlim=(-0.6, width - 0.4), ylim=(-levels + 0.4, 0.6))
    counts = nodes.get("count")
    hidden = 0
    for node, (x, depth) in placed.items():
        rows = f"\n{int(counts[node]):,} rows" if counts is not None else ""
        if feature[node] >= 0 and depth < max_depth:
            name = names[feature[node]]
            text = _split_text(name, int(nodes["bin"][node]), edges, int(feature[node])) + rows
            if "default_left" in nodes:
                text += f"\nmissing: {'yes' if bool(nodes['default_left'][node]) else 'no'}"
            color = "#fff1e5" if _is_host(name) else "#e7f0fd"
            for child, word in ((int(left[node]), "yes"), (int(right[node]), "no")):
                cx, cy = placed[child]
                ax.annotate(
                    "",
                    xy=(cx, -cy + 0.22),
                    xytext=(x, -depth - 0.22),
                    arrowprops={"arrowstyle": "-", "color": _GREY},
                )
                ax.text(
                    (x + cx) / 2, -(depth + cy) / 2, word, fontsize=7, color=_GREY, ha="center", va="center"
                )
        elif feature[node] >= 0:
            hidden += 1
            text = "… deeper levels" + rows
            color = "#f6f8fa"
        else:
            text = f"leaf {float(nodes['value'][node]):+.3f}" + rows
            color = "#eaf6ec"
        ax.text(
            x,
            -depth,
            text,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.35", "facecolor": color, "edgecolor": _GREY, "linewidth": 0.8},
        )
    title = "Rows meeting a node's rule go left (yes), the others right (no)"
    ax.set_title(
        title
        + (
            f"; {hidden} branches go deeper than {max_depth} level{'s' if max_depth > 1 else ''}"
            if hidden
            else ""
        ),
        fontsize=9,
    )
    return fig
