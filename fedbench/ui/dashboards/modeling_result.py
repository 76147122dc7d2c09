"""How the modeling dashboard draws a trained model: headline figures, the metrics of training against validation
rows, the charts, a run's settings in words, our part of the model (our features and their weights, or how
much the trees use them), what the partner learns of a training, and two runs side by side.

Plain functions of the values the steps stored (`evaluate`'s metrics; the training step's model, metrics and
scores, of `hetero_lr` or `hetero_secureboost`), so `modeling.py` only reads and places them. Each training
component judges its own model (`fedbench.ml.health`) and stores its warnings in its metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from fedbench.client.records import RunInfo, StepInfo
from fedbench.ui.dashboards.common import figure_box, table_html
from fedbench.ui.dashboards.figures import chart, chart_grid
from fedbench.ui.dashboards.templates import MODEL_KINDS, TRAIN_COMPONENTS

__all__ = [
    "TREES",
    "final_metrics",
    "guest_charts",
    "headline",
    "kind_of",
    "losses_of",
    "metric_frame",
    "metrics_table",
    "model_part_html",
    "model_part_table",
    "partner_figures",
    "refine_from_of",
    "settings_differences",
    "settings_text",
    "train_step",
    "tree_charts",
    "warnings_html",
]

TREES = "hetero_secureboost"
"""The component of boosted-tree models."""

_METRICS = (
    ("auc", "AUC"),
    ("ks", "KS"),
    ("log_loss", "Log loss"),
    ("accuracy", "Accuracy"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1", "F1"),
    ("rows", "Rows"),
    ("positives", "Positives"),
)
COMPARED = ("validation_auc", "validation_ks", "train_auc", "train_ks")
"""The final metrics two runs are compared on (with the loss per epoch)."""


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def train_step(info: RunInfo) -> StepInfo | None:
    """A run's step that trains a model (the first of a `TRAIN_COMPONENTS` component), or None."""
    return next((s for s in info.steps if s.component in TRAIN_COMPONENTS), None)


def kind_of(info: RunInfo) -> str | None:
    """The component that trained a run's model ("hetero_lr", "hetero_secureboost"), or None."""
    step = train_step(info)
    return step.component if step is not None else None


def warnings_html(warnings: Any) -> str:
    """A model's training warnings (from its training step's metrics) in a box that stands out; nothing
    without any."""
    if not isinstance(warnings, list) or not warnings:
        return ""
    items = "".join(f"<li>{escape(str(w))}</li>" for w in warnings)
    lead = "⚠ This model was trained with warnings; check them before using it (scoring does not offer it first):"
    return (
        f'<div class="fb-message fb-warning fb-modeling-warnings"><b>{escape(lead)}</b><ul>{items}</ul></div>'
    )


def headline(
    evaluation: dict[str, Any] | None,
    train_metrics: dict[str, Any] | None,
    *,
    kind: str = "hetero_lr",
) -> str:
    """The guest's headline figures: validation AUC and KS, training AUC, epochs run (trees kept), training
    rows; above them the training's warnings, if any."""
    evaluation = evaluation or {}
    validation = evaluation.get("validation") or {}
    train = evaluation.get("train") or {}
    parts = []
    if validation:
        parts += [
            figure_box("AUC on validation rows", _number(validation.get("auc")), "fb-modeling-auc"),
            figure_box("KS on validation rows", _number(validation.get("ks")), "fb-modeling-ks"),
        ]
    if train:
        css = "fb-modeling-train-auc" if validation else "fb-modeling-auc"
        parts.append(figure_box("AUC on training rows", _number(train.get("auc")), css))
    if train_metrics and kind == TREES:
        parts.append(figure_box("trees", _number(train_metrics.get("trees")), "fb-modeling-trees"))
    elif train_metrics:
        parts.append(figure_box("epochs run", _number(train_metrics.get("epochs")), "fb-modeling-epochs"))
    if train.get("rows") is not None:
        parts.append(figure_box("training rows", _number(train.get("rows")), "fb-modeling-rows"))
    warned = warnings_html((train_metrics or {}).get("warnings"))
    return warned + (f'<div class="fb-figures">{"".join(parts)}</div>' if parts else "")


def metrics_table(evaluation: dict[str, Any]) -> str:
    """Each metric on training rows beside the same on validation rows."""
    parts = [p for p in ("train", "validation") if isinstance(evaluation.get(p), dict)]
    names = {"train": "training rows", "validation": "validation rows"}
    rows = []
    for key, label in _METRICS:
        values = {names[p]: _number(evaluation[p].get(key), 4) for p in parts}
        if any(values.values()):
            rows.append({"metric": label, **values})
    return table_html(pd.DataFrame(rows), "No metrics were computed.")


def guest_charts(
    scores: pd.DataFrame | None,
    losses: list[float],
    *,
    which: str,
    per: str = "epoch",
    refine_from: int | None = None,
) -> str:
    """ROC, KS, lift and gain, confusion matrix, score distribution (of `scores`: id, y, score, pred) and the
    loss per epoch (`per`: "tree" for boosted trees; a regression's refine epochs marked from `refine_from`);
    `which` says whose rows the scores are ("validation rows")."""
    from fedbench.ui import plots

    charts = []
    if scores is not None and {"y", "score"} <= set(scores.columns) and len(scores):
        y, s = scores["y"], scores["score"]
        charts += [
            chart(lambda: plots.roc_curve(y, s, label=which), f"ROC curve ({which})", "fb-chart-roc"),
            chart(lambda: plots.ks_curve(y, s), f"KS curve ({which})", "fb-chart-ks"),
            chart(lambda: plots.lift_gain_chart(y, s), f"Lift and gain ({which})", "fb-chart-lift"),
        ]
        if "pred" in scores.columns:
            charts.append(
                chart(
                    lambda: plots.confusion_matrix(y, scores["pred"]),
                    f"Confusion matrix ({which})",
                    "fb-chart-confusion",
                )
            )
        charts.append(chart(lambda: plots.score_distribution(s, y), f"Scores ({which})", "fb-chart-scores"))
    if losses:
        frame = pd.DataFrame({"name": "loss", "iteration": range(len(losses)), "value": losses})
        title = f"Loss per {per}"
        charts.append(
            chart(
                lambda: plots.loss_curve(frame, title=title, refine_from=refine_from), title, "fb-chart-loss"
            )
        )
    return chart_grid(charts) if charts else ""


def tree_charts(model: Any, *, top: int = 20) -> str:
    """A boosted-tree model's feature importance (by gain) and its first tree, drawn to depth 3 with the
    guest's own thresholds as values; nothing for a model that is not the guest's boosted trees."""
    from fedbench.ui import plots

    if not isinstance(model, dict) or model.get("component") != TREES or model.get("role") != "guest":
        return ""
    names = [str(n) for n in model.get("feature_names") or []]
    importance = model.get("importance") or {}
    charts = [
        chart(
            lambda: plots.feature_importance(importance, names, top=top),
            "Feature importance",
            "fb-chart-importance",
        )
    ]
    rounds = model.get("trees") or []
    if rounds and rounds[0]:
        edges = (model.get("binner") or {}).get("edges")
        charts.append(
            chart(
                lambda: plots.tree_view(rounds[0][0], names, max_depth=3, edges=edges),
                "The first tree",
                "fb-chart-tree",
            )
        )
    return chart_grid(charts)


def refine_from_of(train_metrics: dict[str, Any] | None) -> int | None:
    """The epoch a regression's refine epochs began at (its first class's, for more classes), else None."""
    start = (train_metrics or {}).get("refine_from")
    if isinstance(start, dict):
        start = next(iter(start.values()), None)
    return start if isinstance(start, int) and not isinstance(start, bool) else None


def losses_of(train_metrics: dict[str, Any] | None) -> list[float]:
    """The loss per epoch of a binary model (the first class's, for more classes); a boosted-tree model's
    training loss per tree."""
    metrics = train_metrics or {}
    loss = metrics.get("loss", metrics.get("train_loss"))
    if isinstance(loss, dict):
        loss = next(iter(loss.values()), [])
    return [float(v) for v in loss] if isinstance(loss, list) else []


def metric_frame(evaluation: dict[str, Any] | None, train_metrics: dict[str, Any] | None) -> pd.DataFrame:
    """A run's metrics as `plots.compare_runs` takes them: the loss per epoch and the final AUCs and KSs."""
    rows: list[dict[str, Any]] = [
        {"name": "loss", "iteration": i, "value": v} for i, v in enumerate(losses_of(train_metrics))
    ]
    for name in COMPARED:
        part, metric = name.split("_", 1)
        value = ((evaluation or {}).get(part) or {}).get(metric)
        if value is not None:
            rows.append({"name": name, "iteration": None, "value": float(value)})
    return pd.DataFrame(rows, columns=["name", "iteration", "value"])


def settings_text(params: dict[str, Any] | None) -> str:
    """The training settings a business user changes, in one line."""
    if not params:
        return ""
    parts = []
    if "trees" in params:
        depth = f" of depth {int(params['max_depth'])}" if "max_depth" in params else ""
        parts.append(f"{int(params['trees'])} trees{depth}")
    if "learning_rate" in params:
        parts.append(f"learning rate {params['learning_rate']:g}")
    if "epochs" in params:
        parts.append(f"{int(params['epochs'])} epochs at most")
    if "batch_size" in params:
        size = int(params["batch_size"])
        parts.append("all rows per batch" if size == 0 else f"batches of {size:,} rows")
    if "bins" in params:
        parts.append(f"{int(params['bins'])} bins per feature")
    if params.get("penalty") not in (None, "none") and "alpha" in params:
        parts.append(f"{str(params['penalty']).upper()} penalty {params['alpha']:g}")
    if "key_bits" in params:
        parts.append(f"{int(params['key_bits'])}-bit keys")
    if "protocol" in params:
        parts.append(f"protocol {params['protocol']}")
    return " · ".join(parts)


def model_part_table(model: dict[str, Any]) -> pd.DataFrame:
    """Our part of a model. Logistic regression: each of our features with its weight and the training mean and
    spread it is standardised with (the guest's part ends with the intercept). Boosted trees: each of our
    features with the splits that use it (and, for the guest, their summed gain; for the host, its thresholds)."""
    if model.get("component") == TREES:
        return _tree_part_table(model)
    design = model.get("design") or {}
    features = [str(f) for f in design.get("features", [])]
    coef = np.asarray(model.get("coef") or [[]], dtype=float)
    weights = coef[0] if coef.ndim == 2 and len(coef) else np.zeros(0)
    mean = list(design.get("mean", []))
    std = list(design.get("std", []))
    rows = [
        {
            "feature": name,
            "weight": float(weights[i]) if i < len(weights) else None,
            "training mean": mean[i] if i < len(mean) else None,
            "training spread (sd)": std[i] if i < len(std) else None,
        }
        for i, name in enumerate(features)
    ]
    if design.get("intercept") and len(weights) > len(features):
        rows.append({"feature": "(intercept)", "weight": float(weights[len(features)])})
    return pd.DataFrame(rows)


_THRESHOLDS_SHOWN = 5


def _plain(value: float) -> str:
    """A threshold as a person writes it: 26,000 rather than 2.6e+04, 0.1706 rather than 0.170634."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _tree_part_table(model: dict[str, Any]) -> pd.DataFrame:
    """The guest: its own features by the gain of the splits using them. The host: its features with the
    splits on them and their thresholds (which only the host holds)."""
    if model.get("role") == "host":
        splits = [s for s in model.get("splits") or [] if isinstance(s, dict)]
        rows: list[dict[str, Any]] = []
        for name in [str(f) for f in model.get("features") or []]:
            cuts = sorted({float(s["threshold"]) for s in splits if s.get("feature") == name})
            shown = ", ".join(
                _plain(c) if np.isfinite(c) else "missing apart" for c in cuts[:_THRESHOLDS_SHOWN]
            )
            more = f" and {len(cuts) - _THRESHOLDS_SHOWN} more" if len(cuts) > _THRESHOLDS_SHOWN else ""
            used = sum(1 for s in splits if s.get("feature") == name)
            rows.append(
                {"feature": name, "splits using it": used, "thresholds (below goes left)": shown + more}
            )
        return _by(rows, "splits using it")
    names = [str(n) for n in model.get("feature_names") or []]
    ours = int(model.get("guest_features", len(names)))
    importance: dict[str, Any] = model.get("importance") or {}
    counts = list(importance.get("split") or [])
    gains = list(importance.get("gain") or [])
    return _by(
        [
            {
                "feature": name,
                "splits using it": int(counts[i]) if i < len(counts) else 0,
                "summed gain": float(gains[i]) if i < len(gains) else 0.0,
            }
            for i, name in enumerate(names[:ours])
        ],
        "summed gain",
    )


def _by(rows: list[dict[str, Any]], column: str) -> pd.DataFrame:
    """The rows as a table, largest `column` first (an empty table without rows)."""
    frame = pd.DataFrame(rows)
    return frame.sort_values(column, ascending=False, kind="mergesort") if len(frame) else frame


def model_part_html(model: Any) -> str:
    """Our part of a model as the page shows it (nothing when we do not hold one)."""
    if not isinstance(model, dict):
        return ""
    if model.get("component") != TREES:
        note = (
            "Only your features' weights: the partner holds the weights of its own features, and neither of "
            "you sees the other's."
        )
    elif model.get("role") == "host":
        note = (
            "Your features and the splits of the trees on them, with their thresholds: these stay with you. "
            "The guest holds the trees and their leaf values, and knows your features only as anonymous ids."
        )
    else:
        note = (
            "Your features and how much the trees use them. You hold the trees, their leaf values and the "
            "thresholds of your features; the partner holds the thresholds of its features, which you know "
            "only as anonymous ids (host:0, host:1...)."
        )
    table = table_html(model_part_table(model).reset_index(drop=True), "No features.")
    return f'<div class="fb-subsection">Your part of the model</div><div class="fb-help">{escape(note)}</div>{table}'


def partner_figures(model: Any, train_metrics: Any, guest: str) -> str:
    """What the partner learns of a training: its features, its training rows, the epochs (trees and the
    splits on its features, for boosted trees); not the metrics."""
    trees = isinstance(model, dict) and model.get("component") == TREES
    figures = ""
    if isinstance(model, dict):
        names = model.get("features") if trees else (model.get("design") or {}).get("features")
        rows = (model.get("card") or {}).get("rows")
        figures += figure_box("your features in the model", f"{len(names or []):,}", "fb-modeling-features")
        if rows is not None:
            figures += figure_box("your training rows", f"{int(rows):,}", "fb-modeling-rows")
    metrics = train_metrics if isinstance(train_metrics, dict) else {}
    if trees and metrics.get("trees") is not None:
        figures += figure_box("trees", f"{int(metrics['trees']):,}", "fb-modeling-trees")
        if metrics.get("splits") is not None:
            figures += figure_box(
                "splits on your features", f"{int(metrics['splits']):,}", "fb-modeling-host-splits"
            )
    elif metrics.get("epochs") is not None:
        figures += figure_box("epochs run", f"{int(metrics['epochs']):,}", "fb-modeling-epochs")
    held = "the thresholds of the splits on your features" if trees else "the weights of your features"
    return (
        f'<div class="fb-figures">{figures}</div>'
        f'<div class="fb-help fb-modeling-partner-note">{escape(guest)} holds the labels: the model\'s '
        "metrics (AUC, KS...) are computed on its side and are not shared with you. You hold your part "
        f"of the model: {held}, below.</div>"
    )


def settings_differences(
    infos: list[RunInfo],
    settings: list[dict[str, Any]],
    labels: tuple[str, str],
    names: Mapping[str, str],
) -> str:
    """The training settings two runs differ in (`names`: how the page names a setting), or why none do; for
    runs of two kinds of model, which model each is and its settings."""
    kinds = [kind_of(info) for info in infos]
    if kinds[0] != kinds[1]:
        each = "; ".join(
            f"{label}: {MODEL_KINDS.get(str(kind), str(kind)).lower()}"
            + (f" ({settings_text(params)})" if params else "")
            for label, kind, params in zip(labels, kinds, settings, strict=True)
        )
        return f'<div class="fb-help fb-modeling-kinds">Two kinds of model: {escape(each)}.</div>'
    a, b = settings
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    keys = [step.key if (step := train_step(info)) else None for info in infos]
    if keys[0] == keys[1]:
        return (
            '<div class="fb-help">Both runs hold the same model: the same data and training settings.</div>'
        )
    if not changed:
        return (
            '<div class="fb-help">The training settings are the same: the data before training differs.</div>'
        )
    frame = pd.DataFrame(
        [{"setting": names.get(k, k), labels[0]: a.get(k), labels[1]: b.get(k)} for k in changed]
    )
    return '<div class="fb-subsection">Settings that differ</div>' + table_html(frame)


def final_metrics(frames: list[pd.DataFrame], labels: tuple[str, str]) -> str:
    """Two runs' final metrics side by side (frames of `metric_frame`)."""
    finals = [f.groupby("name", sort=False)["value"].last() for f in frames]
    names = list(dict.fromkeys([*finals[0].index, *finals[1].index]))
    words = {"loss": "final loss"}
    frame = pd.DataFrame(
        [
            {
                "metric": words.get(n, n.replace("_", " ").replace("auc", "AUC").replace("ks", "KS")),
                labels[0]: finals[0].get(n),
                labels[1]: finals[1].get(n),
            }
            for n in names
        ]
    )
    return '<div class="fb-subsection">Final metrics</div>' + table_html(frame)
