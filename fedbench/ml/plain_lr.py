"""Logistic regression in plaintext on one party's own columns, with `hetero_lr`'s updates and settings.

The guest-only side of `compare`: the same design (standardisation, intercept), batches, starting weights,
learning-rate schedule, optimizer, penalty, sample weights and early stopping as the federated training, and
the same residual (the first-order Taylor expansion of the sigmoid, d = z/4 + 1/2 - y) and loss, so the two
models differ only in the partner's columns. No peer takes part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fedbench.ml.optim import Optimizer, learning_rate
from fedbench.ml.training import EarlyStopping

__all__ = ["PlainFit", "PlainLRSettings", "fit_plain_lr", "starting_weights"]


@dataclass(frozen=True)
class PlainLRSettings:
    """The `hetero_lr` params a plaintext fit follows (names as in `HeteroLRParams`)."""

    epochs: int = 10
    learning_rate: float = 0.15
    lr_schedule: str = "constant"
    lr_decay: float = 0.0
    optimizer: str = "sgd"
    penalty: str = "l2"
    alpha: float = 0.01
    early_stopping: bool = True
    tol: float = 1e-4
    init: str = "zeros"
    init_value: float = 0.0
    seed: int = 0


@dataclass
class PlainFit:
    """The weights a plaintext fit ended with and its loss per epoch."""

    coef: np.ndarray
    losses: list[float] = field(default_factory=list)


def starting_weights(settings: PlainLRSettings, width: int) -> np.ndarray:
    """The starting weights `hetero_lr` draws for one binary model of `width` columns."""
    if settings.init == "random":
        return np.random.default_rng(settings.seed).normal(0.0, 0.01, width)
    if settings.init == "constant":
        return np.full(width, settings.init_value)
    return np.zeros(width)


def fit_plain_lr(
    x: np.ndarray,
    y: np.ndarray,
    batches: list[np.ndarray],
    settings: PlainLRSettings,
    *,
    intercept_index: int | None,
    sample_weight: np.ndarray | None = None,
) -> PlainFit:
    """Train on the standardised matrix `x` (intercept column at `intercept_index`) and 0/1 labels `y`.

    Per batch: residual d = x w / 4 + 1/2 - y (times the rows' weights), gradient x^T d / rows, one optimizer
    step; the epoch's loss is the rows' mean Taylor loss log 2 - y' z / 2 + z^2 / 8 (y' in -1/+1) at the
    weights each batch started from, and training stops as `EarlyStopping` says.
    """
    w = starting_weights(settings, x.shape[1])
    optimizer = Optimizer(settings.optimizer, settings.penalty, settings.alpha, intercept_index)
    stopping = EarlyStopping(settings.epochs, settings.early_stopping, settings.tol)
    losses: list[float] = []
    previous: float | None = None
    for epoch in range(settings.epochs):
        rate = learning_rate(settings.learning_rate, settings.lr_schedule, settings.lr_decay, epoch)
        total = 0.0
        for rows in batches:
            xb, yb = x[rows], y[rows]
            z = xb @ w
            total += float(np.sum(math.log(2.0) - 0.5 * (2.0 * yb - 1.0) * z + 0.125 * z * z))
            d = z / 4.0 + 0.5 - yb
            if sample_weight is not None:
                d = d * sample_weight[rows]
            w = optimizer.step(w, xb.T @ d / len(rows), rate)
        loss = total / max(len(y), 1)
        losses.append(loss)
        if not stopping.go_on(epoch, loss, previous):
            break
        previous = loss
    return PlainFit(w, losses)
