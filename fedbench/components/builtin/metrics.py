"""Model evaluation metrics in plain numpy, used by the `evaluate` component.

They are pure functions of arrays (labels, scores, predictions) so they can be tested in-process against
scikit-learn, and return only JSON-friendly values (floats, ints, lists, dicts) that the UI plots directly.
Conventions follow scikit-learn: the confusion matrix is `[[tn, fp], [fn, tp]]` (rows are true classes),
a precision or recall whose denominator is zero is 0, and ties in scores are handled as one threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from fedbench.errors import FedbenchError

__all__ = [
    "MetricsError",
    "binary_metrics",
    "confusion",
    "lift_gain",
    "log_loss",
    "multiclass_metrics",
    "regression_metrics",
    "roc_auc",
    "roc_points",
]

ArrayLike = npt.ArrayLike


class MetricsError(FedbenchError):
    """Labels, scores or predictions cannot be evaluated (empty, wrong shape, not binary...)."""

    code = "metrics"


def _vectors(y_true: ArrayLike, values: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    if len(y) == 0:
        raise MetricsError("there are no rows to evaluate")
    if len(y) != len(v):
        raise MetricsError(f"{len(y)} labels but {len(v)} {what}")
    if np.isnan(y).any() or np.isnan(v).any():
        raise MetricsError(f"labels or {what} contain missing values; drop or fill them first")
    return y, v


def _class_vectors(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted classes: numbers as floats, or (text classes such as "low", "high") both as text."""
    y, p = pd.Series(np.asarray(y_true).ravel()), pd.Series(np.asarray(y_pred).ravel())
    if len(y) == 0:
        raise MetricsError("there are no rows to evaluate")
    if len(y) != len(p):
        raise MetricsError(f"{len(y)} labels but {len(p)} predictions")
    if y.isna().any() or p.isna().any():
        raise MetricsError("labels or predictions contain missing values; drop or fill them first")
    try:
        return y.astype(float).to_numpy(), p.astype(float).to_numpy()
    except (TypeError, ValueError):
        return y.astype(str).to_numpy(dtype=object), p.astype(str).to_numpy(dtype=object)


def _same_kind(labels: ArrayLike, like: np.ndarray) -> np.ndarray:
    """`labels` in the representation of the classes `like` holds (floats, or text)."""
    values = np.asarray(labels).ravel()
    return values.astype(float) if like.dtype.kind == "f" else values.astype(str).astype(object)


def _binary_labels(y: np.ndarray) -> np.ndarray:
    if not np.isin(y, (0.0, 1.0)).all():
        raise MetricsError(f"binary labels must be 0 or 1; found {sorted(set(np.unique(y).tolist()))[:5]}")
    return y.astype(np.int64)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def roc_points(y_true: ArrayLike, score: ArrayLike) -> dict[str, list[float]]:
    """ROC curve at every distinct score, highest first, starting at (0, 0) with threshold max(score) + 1."""
    y, s = _vectors(y_true, score, "scores")
    y = _binary_labels(y)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    positives, negatives = int(y.sum()), len(y) - int(y.sum())
    tpr = np.r_[0.0, _ratio(tps, positives)]
    fpr = np.r_[0.0, _ratio(fps, negatives)]
    thresholds = np.r_[s[0] + 1.0, s[last]]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (ties count half); MetricsError if only one class is present."""
    y = _binary_labels(_vectors(y_true, score, "scores")[0])
    if y.min() == y.max():
        raise MetricsError("AUC needs both classes among the labels; only one is present")
    roc = roc_points(y_true, score)
    fpr, tpr = np.asarray(roc["fpr"]), np.asarray(roc["tpr"])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def log_loss(y_true: ArrayLike, proba: ArrayLike) -> float:
    """Mean negative log-likelihood of binary labels under probabilities of class 1 (clipped to (0, 1))."""
    y, p = _vectors(y_true, proba, "probabilities")
    y = _binary_labels(y)
    eps = np.finfo(float).eps
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def confusion(y_true: ArrayLike, y_pred: ArrayLike, labels: ArrayLike | None = None) -> dict[str, Any]:
    """Confusion matrix (rows: true class, columns: predicted class) over `labels` (default: every class)."""
    y, p = _class_vectors(y_true, y_pred)
    classes = np.unique(np.r_[y, p]) if labels is None else _same_kind(labels, y)
    index = {c: i for i, c in enumerate(classes.tolist())}
    try:
        rows = np.array([index[v] for v in y.tolist()], dtype=np.int64)
        cols = np.array([index[v] for v in p.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise MetricsError(f"class {exc.args[0]} is not among the labels {classes.tolist()}") from None
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (rows, cols), 1)
    return {"labels": classes.tolist(), "matrix": matrix.tolist()}


def _at_threshold(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Counts and rates when predicting 1 for score >= each threshold (vectorised over thresholds)."""
    predicted = s[None, :] >= thresholds[:, None]
    tp = (predicted & (y[None, :] == 1)).sum(axis=1)
    fp = predicted.sum(axis=1) - tp
    fn = int(y.sum()) - tp
    tn = len(y) - tp - fp - fn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    accuracy = (tp + tn) / len(y)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": accuracy,
    }


def lift_gain(y_true: ArrayLike, score: ArrayLike, bins: int = 10) -> list[dict[str, float]]:
    """Lift and cumulative gain by bucket of rows ordered by score, highest first (deciles for bins=10)."""
    y, s = _vectors(y_true, score, "scores")
    y = _binary_labels(y)
    if bins < 1:
        raise MetricsError(f"bins must be at least 1, not {bins}")
    order = np.argsort(-s, kind="mergesort")
    buckets = [b for b in np.array_split(y[order], min(bins, len(y))) if len(b)]
    positives = int(y.sum())
    base_rate = positives / len(y)
    rows, hits = np.array([len(b) for b in buckets]), np.array([int(b.sum()) for b in buckets])
    cum_rows, cum_hits = np.cumsum(rows), np.cumsum(hits)
    rate = hits / rows
    return [
        {
            "bucket": i + 1,
            "rows": int(rows[i]),
            "positives": int(hits[i]),
            "positive_rate": float(rate[i]),
            "lift": float(_ratio(rate[i], base_rate)),
            "cumulative_lift": float(_ratio(cum_hits[i] / cum_rows[i], base_rate)),
            "cumulative_gain": float(_ratio(cum_hits[i], positives)),
            "population": float(cum_rows[i] / len(y)),
        }
        for i in range(len(buckets))
    ]


def binary_metrics(
    y_true: ArrayLike, score: ArrayLike, *, threshold: float = 0.5, bins: int = 10
) -> dict[str, Any]:
    """Every binary metric: AUC, KS, log loss, metrics at `threshold`, by-threshold table, curves, lift.

    AUC is None when only one class is present, log loss None when the scores are not probabilities.
    """
    y, s = _vectors(y_true, score, "scores")
    y = _binary_labels(y)
    roc = roc_points(y, s)
    fpr, tpr, cuts = np.asarray(roc["fpr"]), np.asarray(roc["tpr"]), np.asarray(roc["thresholds"])
    gap = tpr - fpr
    best = int(np.argmax(gap))
    at = {k: v[0] for k, v in _at_threshold(y, s, np.array([threshold])).items()}
    in_probability = bool(s.min() >= 0 and s.max() <= 1)
    low, high = (0.0, 1.0) if in_probability else (float(s.min()), float(s.max()))
    grid = np.linspace(low, high, 21)
    table = _at_threshold(y, s, grid)
    population = np.r_[0.0, (fpr[1:] * (len(y) - y.sum()) + tpr[1:] * y.sum()) / len(y)]
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "auc": roc_auc(y, s) if 0 < y.sum() < len(y) else None,
        "ks": float(gap[best]),
        "ks_threshold": float(cuts[best]),
        "log_loss": log_loss(y, s) if in_probability else None,
        "threshold": float(threshold),
        "accuracy": float(at["accuracy"]),
        "precision": float(at["precision"]),
        "recall": float(at["recall"]),
        "f1": float(at["f1"]),
        "confusion_matrix": [[int(at["tn"]), int(at["fp"])], [int(at["fn"]), int(at["tp"])]],
        "by_threshold": [
            {
                "threshold": float(grid[i]),
                "precision": float(table["precision"][i]),
                "recall": float(table["recall"][i]),
                "f1": float(table["f1"][i]),
                "accuracy": float(table["accuracy"][i]),
                "predicted_positive": int(table["tp"][i] + table["fp"][i]),
            }
            for i in range(len(grid))
        ],
        "roc": roc,
        "ks_curve": {
            "thresholds": cuts.tolist(),
            "population": population.tolist(),
            "tpr": tpr.tolist(),
            "fpr": fpr.tolist(),
        },
        "lift": lift_gain(y, s, bins),
    }


def _f1_from_confusion(matrix: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "support": actual,
    }


def multiclass_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, proba: dict[Any, ArrayLike] | None = None
) -> dict[str, Any]:
    """Accuracy, macro and micro F1, per-class scores, confusion matrix; with per-class probabilities
    (`proba[class]`), also the multi-class log loss and the one-vs-rest macro AUC. Classes may be numbers or
    text."""
    y, p = _class_vectors(y_true, y_pred)
    matrix_info = confusion(y, p)
    matrix = np.asarray(matrix_info["matrix"])
    per_class = _f1_from_confusion(matrix)
    tp_all = float(np.trace(matrix))
    micro = tp_all / len(y)
    result: dict[str, Any] = {
        "rows": len(y),
        "accuracy": micro,
        "macro_precision": float(per_class["precision"].mean()),
        "macro_recall": float(per_class["recall"].mean()),
        "macro_f1": float(per_class["f1"].mean()),
        "micro_f1": micro,
        "weighted_f1": float(np.average(per_class["f1"], weights=per_class["support"])),
        "confusion_matrix": matrix_info,
        "per_class": [
            {
                "label": c,
                "precision": float(per_class["precision"][i]),
                "recall": float(per_class["recall"][i]),
                "f1": float(per_class["f1"][i]),
                "support": int(per_class["support"][i]),
            }
            for i, c in enumerate(matrix_info["labels"])
        ],
    }
    if proba:
        proba = {key: proba[c] for c, key in zip(proba, _same_kind(list(proba), y).tolist(), strict=True)}
        classes = sorted(proba)
        missing = sorted(set(np.unique(y).tolist()) - set(classes))
        if missing:
            raise MetricsError(f"labels {missing} have no probability column; give one per class")
        probs = np.column_stack([np.asarray(proba[c], dtype=float) for c in classes])
        if probs.shape[0] != len(y):
            raise MetricsError(f"{len(y)} labels but {probs.shape[0]} rows of probabilities")
        probs = probs / probs.sum(axis=1, keepdims=True)
        eps = np.finfo(float).eps
        truth = np.searchsorted(np.asarray(classes), y)
        result["log_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), truth], eps, 1.0))))
        aucs = [roc_auc((y == c).astype(float), probs[:, i]) for i, c in enumerate(classes) if c in y]
        result["auc_ovr_macro"] = float(np.mean(aucs))
    return result


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, Any]:
    """MAE, MSE, RMSE and R2 (1.0 for a perfect fit of a constant target, 0.0 for an imperfect one)."""
    y, p = _vectors(y_true, y_pred, "predictions")
    error = y - p
    mse = float(np.mean(error**2))
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum(error**2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    return {
        "rows": len(y),
        "mae": float(np.mean(np.abs(error))),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "r2": r2,
    }
