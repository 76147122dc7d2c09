"""Horizontal logistic regression, one client's arithmetic: local epochs from the global model, and scoring.

Binary labels use the sigmoid (one column of weights), more classes the softmax (one column per class). Rows
are standardised with the federation's global mean and scale, so every client steps on the same geometry.
FedProx adds `mu / 2 * ||w - w_global||^2` to the local loss, which keeps clients with skewed rows from
drifting apart; `mu = 0` is FedAvg. Weights are (features + 1) x columns, the intercept in the last row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LocalData", "local_update", "log_loss", "predict_proba", "weight_shape"]


@dataclass(frozen=True)
class LocalData:
    """One client's rows, standardised, with a constant column for the intercept, and one-hot labels."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def build(
        cls, features: np.ndarray, labels: np.ndarray, mean: np.ndarray, scale: np.ndarray, columns: int
    ) -> LocalData:
        """Standardise `features` (a missing value counts as the mean) and encode `labels` (0..K-1)."""
        x = np.asarray(features, dtype=np.float64)
        x = (np.where(np.isnan(x), mean, x) - mean) / scale
        x = np.hstack([x, np.ones((len(x), 1))])
        codes = np.asarray(labels, dtype=np.int64)
        y = codes[:, None].astype(np.float64) if columns == 1 else np.eye(columns)[codes]
        return cls(x, y)


def weight_shape(features: int, classes: int) -> tuple[int, int]:
    """The weights' shape: a row per feature plus the intercept; one column (binary) or one per class."""
    return features + 1, 1 if classes == 2 else classes


def predict_proba(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each row's probability per weight column: the sigmoid (binary) or the softmax."""
    z = x @ weights
    if weights.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_loss(weights: np.ndarray, data: LocalData, l2: float) -> float:
    """The mean cross-entropy of the rows plus the L2 penalty on the weights (not the intercept)."""
    p = np.clip(predict_proba(weights, data.x), 1e-12, 1 - 1e-12)
    if weights.shape[1] == 1:
        rows = -(data.y * np.log(p) + (1 - data.y) * np.log(1 - p)).sum(axis=1)
    else:
        rows = -(data.y * np.log(p)).sum(axis=1)
    return float(rows.mean() + 0.5 * l2 * np.sum(weights[:-1] ** 2))


def local_update(
    start: np.ndarray,
    data: LocalData,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    l2: float,
    mu: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The weights after `epochs` of mini-batch gradient descent from the global `start` (FedProx when mu > 0)."""
    w = start.copy()
    rows = len(data.x)
    for _ in range(epochs):
        order = rng.permutation(rows)
        for begin in range(0, rows, batch_size):
            batch = order[begin : begin + batch_size]
            x, y = data.x[batch], data.y[batch]
            grad = x.T @ (predict_proba(w, x) - y) / len(batch)
            grad[:-1] += l2 * w[:-1]
            grad += mu * (w - start)
            w -= learning_rate * grad
    return w
