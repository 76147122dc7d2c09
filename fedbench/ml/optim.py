"""Learning-rate schedules and the optimizers a party applies to its own plaintext weights.

In the coordinated protocol each party learns its own batch gradient and updates its own weights, so any
optimizer works; SSHE updates secret-shared weights, where only plain SGD (with an L2 penalty) is linear in
the shares. Penalties never apply to the intercept. SGD may be preconditioned by a party's own Newton block
(`approximation.newton_inverse`): the step is then lr M^-1 (gradient + alpha w), a damped Newton step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Optimizer", "learning_rate"]


def learning_rate(base: float, schedule: str, decay: float, epoch: int) -> float:
    """The learning rate of `epoch` (0-based): constant, base / (1 + decay * epoch), or base * exp(-decay * epoch)."""
    if schedule == "constant" or decay == 0:
        return base
    if schedule == "inverse_time":
        return base / (1.0 + decay * epoch)
    if schedule == "exponential":
        return base * math.exp(-decay * epoch)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


@dataclass
class Optimizer:
    """SGD, Adam or RMSprop on one party's weights, with an L1 or L2 penalty on all but the intercept."""

    kind: str
    penalty: str
    alpha: float
    intercept_index: int | None = None
    preconditioner: np.ndarray | None = field(default=None, repr=False)
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    _m: np.ndarray | None = field(default=None, repr=False)
    _v: np.ndarray | None = field(default=None, repr=False)
    _t: int = 0

    def _penalised(self, weights: np.ndarray) -> np.ndarray:
        mask = np.ones_like(weights)
        if self.intercept_index is not None:
            mask[self.intercept_index] = 0.0
        return mask

    def step(self, weights: np.ndarray, gradient: np.ndarray, lr: float) -> np.ndarray:
        """The weights after one step on the mean batch gradient `gradient` of the data loss."""
        mask = self._penalised(weights)
        g = np.asarray(gradient, dtype=np.float64).copy()
        if self.penalty == "l2":
            g = g + self.alpha * weights * mask
        if self.kind == "sgd":
            update = g if self.preconditioner is None else self.preconditioner @ g
        elif self.kind == "adam":
            self._t += 1
            self._m = np.zeros_like(g) if self._m is None else self._m
            self._v = np.zeros_like(g) if self._v is None else self._v
            self._m = self.beta1 * self._m + (1 - self.beta1) * g
            self._v = self.beta2 * self._v + (1 - self.beta2) * g * g
            m_hat = self._m / (1 - self.beta1**self._t)
            v_hat = self._v / (1 - self.beta2**self._t)
            update = m_hat / (np.sqrt(v_hat) + self.eps)
        elif self.kind == "rmsprop":
            self._v = np.zeros_like(g) if self._v is None else self._v
            self._v = 0.9 * self._v + 0.1 * g * g
            update = g / (np.sqrt(self._v) + self.eps)
        else:
            raise ValueError(f"unknown optimizer {self.kind!r}")
        new = weights - lr * update
        if self.penalty == "l1":
            shrink = lr * self.alpha * mask
            new = np.sign(new) * np.maximum(np.abs(new) - shrink, 0.0)
        return new
