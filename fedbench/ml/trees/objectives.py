"""Objectives of boosted trees: labels checked, the initial score (base margin), gradients, hessians, metric.

Binary logistic and squared-error regression have one margin per row; multiclass softmax has one per class
and grows one tree per class each round. Gradients and hessians are those of XGBoost (its softmax hessian is
2p(1-p), a conservative Newton step), so that the same params give the same trees. The federated guest
computes them in plaintext: only their histogram sums are encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.ml.trees.errors import TreeDataError
from fedbench.ml.trees.params import TreeParams

__all__ = ["Objective", "objective_for", "sigmoid", "softmax"]

_MIN_HESS = 1e-16
_PROB_CLIP = 1e-15


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, stable for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of margins (rows x classes)."""
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Objective:
    """One objective: `kind` is binary, multiclass or regression; `outputs` margins (trees) per row (round)."""

    kind: str
    outputs: int

    @property
    def metric_name(self) -> str:
        """The validation metric early stopping watches (lower is better), as XGBoost names it."""
        return {"binary": "logloss", "multiclass": "mlogloss", "regression": "rmse"}[self.kind]

    def check_labels(self, y: Any, rows: int) -> np.ndarray:
        """`y` as a float vector of `rows` labels valid for this objective, or `TreeDataError` saying why not."""
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != rows:
            raise TreeDataError(
                f"the rows and the labels must match: x has {rows} rows but y has shape {labels.shape}"
            )
        try:
            values = labels.astype(np.float64)
        except (TypeError, ValueError):
            raise TreeDataError("the labels must be numbers; encode the classes as 0, 1, ... first") from None
        if not np.isfinite(values).all():
            raise TreeDataError("the labels have missing or infinite values; drop those rows first")
        if self.kind == "binary" and not np.isin(values, (0.0, 1.0)).all():
            found = np.unique(values)[:5].tolist()
            raise TreeDataError(
                f"binary labels must be 0 and 1, found {found}; map the classes to 0 and 1 "
                "or use objective 'multiclass'"
            )
        if self.kind == "multiclass" and not np.isin(values, np.arange(self.outputs)).all():
            raise TreeDataError(
                f"multiclass labels must be whole numbers 0 to {self.outputs - 1} (num_class {self.outputs}); "
                f"found {np.unique(values)[:5].tolist()}"
            )
        return values

    def base_margin(self, y: np.ndarray) -> np.ndarray:
        """The initial score of every row, one per output: log-odds of the positive share, log of each class's
        share (softmax of it gives the shares back), or the mean."""
        if self.kind == "binary":
            share = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
            return np.array([np.log(share / (1.0 - share))])
        if self.kind == "multiclass":
            shares = np.bincount(y.astype(np.int64), minlength=self.outputs) / len(y)
            shares = np.where(shares > 0, shares, 1e-6)
            return np.log(shares)
        return np.array([float(np.mean(y))])

    def gradients(self, y: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and second derivatives of the loss in each margin (rows x outputs each)."""
        if self.kind == "binary":
            p = sigmoid(margin[:, 0])
            return (p - y)[:, None], np.maximum(p * (1.0 - p), _MIN_HESS)[:, None]
        if self.kind == "multiclass":
            p = softmax(margin)
            onehot = np.zeros_like(p)
            onehot[np.arange(len(y)), y.astype(np.int64)] = 1.0
            return p - onehot, np.maximum(2.0 * p * (1.0 - p), _MIN_HESS)
        return margin - y[:, None], np.ones_like(margin)

    def transform(self, margin: np.ndarray) -> np.ndarray:
        """Predictions from margins: P(1) per row, P(class) per row and class, or the value."""
        if self.kind == "binary":
            return sigmoid(margin[:, 0])
        if self.kind == "multiclass":
            return softmax(margin)
        return margin[:, 0].copy()

    def metric(self, y: np.ndarray, margin: np.ndarray) -> float:
        """The objective's metric of `margin` against labels `y`: log loss, multiclass log loss, or RMSE."""
        if self.kind == "binary":
            p = np.clip(sigmoid(margin[:, 0]), _PROB_CLIP, 1 - _PROB_CLIP)
            return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))
        if self.kind == "multiclass":
            p = np.clip(softmax(margin)[np.arange(len(y)), y.astype(np.int64)], _PROB_CLIP, 1.0)
            return float(-np.mean(np.log(p)))
        return float(np.sqrt(np.mean((margin[:, 0] - y) ** 2)))


def objective_for(params: TreeParams) -> Objective:
    """The objective the params name."""
    return Objective(params.objective, params.outputs)
