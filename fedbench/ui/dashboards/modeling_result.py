"""How the modeling dashboard draws a trained model: headline figures, the metrics of training against validation
rows, the charts, a run's settings in words, our part of the model (our features and their weights), what the
partner learns of a training, and two runs side by side.

Plain functions of the values the steps stored (`evaluate`'s metrics, `hetero_lr`'s model, metrics and scores),
so `modeling.py` only reads and places them.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from fedbench.client.records import RunInfo
from fedbench.ui.dashboards.common import figure_box, table_html
from fedbench.ui.dashboards.figures import chart, chart_grid

__all__ = [
    "final_metrics",
    "guest_charts",
    "headline",
    "losses_of",
    "metric_frame",
    "metrics_table",
    "model_part_html",
    "model_part_table",
    "partner_figures",
    "settings_differences",
    "settings_text",
    "warnings_html",
]

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


def warnings_html(warnings: Any) -> str:
    """A model's training warnings (from `hetero_lr`'s metrics) in a box that stands out; nothing without any."""
    if not isinstance(warnings, list) or not warnings:
        return ""
    items = "".join(f"<li>{escape(str(w))}</li>" for w in warnings)
    return (
        '<div class="fb-message fb-warning fb-modeling-warnings"><b>⚠ This model was trained with warnings; '
        f"check them before using it (scoring does not offer it first):</b><ul>{items}</ul></div>"
    )


def headline(evaluation: dict[str, Any] | None, train_metrics: dict[str, Any] | None) -> str:
    """The guest's headline figures: validation AUC and KS, training AUC, epochs run, training rows; above them
    the training's warnings, if any."""
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
    if train_metrics:
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


def guest_charts(scores: pd.DataFrame | None, losses: list[float], *, which: str) -> str:
    """ROC, KS, lift and gain, confusion matrix, score distribution (of `scores`: id, y, score, pred) and the
    loss per epoch; `which` says whose rows the scores are ("validation rows")."""
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
        charts.append(
            chart(lambda: plots.loss_curve(frame, title="Loss per epoch"), "Loss per epoch", "fb-chart-loss")
        )
    return chart_grid(charts) if charts else ""


def losses_of(train_metrics: dict[str, Any] | None) -> list[float]:
    """The loss per epoch of a binary model (the first class's, for more classes)."""
    loss = (train_metrics or {}).get("loss")
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
    if "learning_rate" in params:
        parts.append(f"learning rate {params['learning_rate']:g}")
    if "epochs" in params:
        parts.append(f"{int(params['epochs'])} epochs at most")
    if "batch_size" in params:
        size = int(params["batch_size"])
        parts.append("all rows per batch" if size == 0 else f"batches of {size:,} rows")
    if params.get("penalty") not in (None, "none") and "alpha" in params:
        parts.append(f"{str(params['penalty']).upper()} penalty {params['alpha']:g}")
    if "key_bits" in params:
        parts.append(f"{int(params['key_bits'])}-bit keys")
    if "protocol" in params:
        parts.append(f"protocol {params['protocol']}")
    return " · ".join(parts)


def model_part_table(model: dict[str, Any]) -> pd.DataFrame:
    """Our part of a model: each of our features with its weight and the training mean and spread it is
    standardised with (the guest's part ends with the intercept)."""
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


def model_part_html(model: Any) -> str:
    """Our part of a model as the page shows it (nothing when we do not hold one)."""
    if not isinstance(model, dict):
        return ""
    return (
        '<div class="fb-subsection">Your part of the model</div>'
        '<div class="fb-help">Only your features\' weights: the partner holds the weights of its own features, '
        f"and neither of you sees the other's.</div>{table_html(model_part_table(model), 'No features.')}"
    )


def partner_figures(model: Any, train_metrics: Any, guest: str) -> str:
    """What the partner learns of a training: its features, its training rows, the epochs; not the metrics."""
    figures = ""
    if isinstance(model, dict):
        features = len((model.get("design") or {}).get("features", []))
        rows = (model.get("card") or {}).get("rows")
        figures += figure_box("your features in the model", f"{features:,}", "fb-modeling-features")
        if rows is not None:
            figures += figure_box("your training rows", f"{int(rows):,}", "fb-modeling-rows")
    if isinstance(train_metrics, dict) and train_metrics.get("epochs") is not None:
        figures += figure_box("epochs run", f"{int(train_metrics['epochs']):,}", "fb-modeling-epochs")
    return (
        f'<div class="fb-figures">{figures}</div>'
        f'<div class="fb-help fb-modeling-partner-note">{escape(guest)} holds the labels: the model\'s '
        "metrics (AUC, KS...) are computed on its side and are not shared with you. You hold your part "
        "of the model: the weights of your features, below.</div>"
    )


def settings_differences(
    infos: list[RunInfo],
    settings: list[dict[str, Any]],
    labels: tuple[str, str],
    names: Mapping[str, str],
) -> str:
    """The training settings two runs differ in (`names`: how the page names a setting), or why none do."""
    a, b = settings
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    keys = [step.key if (step := info.step_of("hetero_lr")) else None for info in infos]
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
