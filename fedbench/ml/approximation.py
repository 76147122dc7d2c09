"""How `hetero_lr` approximates the logistic loss, the Newton step both protocols take, and a plaintext replica.

Two approximations (the param `approximation`), the same in both protocols:

* ``taylor``: the first-order Taylor expansion of the sigmoid around 0, as FATE does: residual
  d = z/4 + 1/2 - y, plain (stochastic) gradient steps. Its optimum is the least-squares fit, which on
  imbalanced data with long-tailed features ranks rows measurably worse than logistic regression.
* ``fourier`` (default): *warm-up* epochs on the quadratic loss of curvature `CURVATURE` (residual
  d = C z + 1/2 - y, linear in the encrypted scores, as cheap as Taylor), then the last `refine` epochs on a
  periodic approximation of the sigmoid, sigma_F(z) = 1/2 + sum_k c_k sin(2 pi k z / PERIOD), which two
  parties can evaluate on additive shares of z because sin(a + b) = sin a cos b + cos a sin b (each party
  computes the sines and cosines of its own share; the cross products go through Paillier, see
  `fourier_exchange`). Every step is a block-diagonal Newton step: each party preconditions its own gradient
  with M = C X^T X / rows + alpha D + ridge I of its own features (D: the penalised weights), which needs
  nothing from the peer. The model is the mean of the last epoch's iterates.

Why these choices is measured in docs/protocols/hetero_lr.md. `replica` trains exactly what the protocols
compute, in plaintext, so tests can compare the federated weights with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from fedbench.ml.optim import Optimizer, learning_rate

__all__ = [
    "APPROXIMATIONS",
    "CURVATURE",
    "HARMONICS",
    "NEWTON_RIDGE",
    "PERIOD",
    "PERIOD_BITS",
    "PERIOD_MULTIPLIER",
    "Approximation",
    "ReplicaResult",
    "fourier_loss",
    "fourier_sigmoid",
    "newton_inverse",
    "quadratic_loss",
    "replica",
    "replica_of",
    "uses_newton",
    "warmup_curvature",
]

Approximation = Literal["fourier", "taylor"]
APPROXIMATIONS: tuple[str, ...] = ("fourier", "taylor")

CURVATURE = 0.15
"""C: the curvature of the warm-up loss and of the Newton preconditioner. The logistic loss has curvature
sigma'(z) <= 1/4 (Taylor's 1/4 is its maximum, at z = 0); rows of imbalanced data sit where it is lower, and
0.15 converged best on every data set measured."""
NEWTON_RIDGE = 1e-3
"""Added to the Newton block's diagonal so that collinear or constant features keep it invertible (it changes
the step, never the optimum)."""
PERIOD_MULTIPLIER = 5
PERIOD_BITS = 7
PERIOD = 2.0**PERIOD_BITS / PERIOD_MULTIPLIER
"""The period of sigma_F, 128/5 = 25.6: on shares in Z_2^128 at scale 2^s, 5 z mod 2^(s+7) is exact."""
HARMONICS: tuple[float, ...] = (
    0.5665252305034449,
    0.024127652452818962,
    0.06271853355016034,
    0.03977982061201187,
)
"""c_1..c_4: the least-squares fit of sigmoid(z) - 1/2 over one period, the target tapered to 0 over the
outer 30% (|z| > 9) so that the periodic function is smooth. Error at most 0.011 for |z| <= 4, 0.026 for
|z| <= 8; beyond 12.8 the function wraps around (scores that large are rare where a penalty applies)."""

OMEGAS: tuple[float, ...] = tuple(2.0 * math.pi * (k + 1) / PERIOD for k in range(len(HARMONICS)))
LOSS_CONSTANT = math.log(2.0) + sum(c / w for c, w in zip(HARMONICS, OMEGAS, strict=True))
"""log 2 + sum_k c_k / omega_k: the Fourier loss at z = 0 is log 2, like the logistic loss."""


def fourier_sigmoid(z: np.ndarray) -> np.ndarray:
    """sigma_F(z) = 1/2 + sum_k c_k sin(omega_k z): the sigmoid the refine epochs use."""
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, 0.5)
    for c, w in zip(HARMONICS, OMEGAS, strict=True):
        out += c * np.sin(w * z)
    return out


def fourier_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss whose derivative in z is sigma_F(z) - y, equal to log 2 at z = 0 (per row)."""
    z = np.asarray(z, dtype=np.float64)
    cosines = sum(c / w * np.cos(w * z) for c, w in zip(HARMONICS, OMEGAS, strict=True))
    return LOSS_CONSTANT + (0.5 - y) * z - cosines


def quadratic_loss(z: np.ndarray, y: np.ndarray, curvature: float) -> np.ndarray:
    """log 2 + (1/2 - y) z + C z^2 / 2 (per row): Taylor's loss for C = 1/4, the warm-up loss for C = 0.15."""
    z = np.asarray(z, dtype=np.float64)
    return math.log(2.0) + (0.5 - y) * z + 0.5 * curvature * z * z


def uses_newton(approximation: str, optimizer: str, penalty: str) -> bool:
    """Whether a party preconditions its steps (fourier with plain SGD; Adam, RMSprop and L1 keep their own)."""
    return approximation == "fourier" and optimizer == "sgd" and penalty != "l1"


def warmup_curvature(approximation: str, optimizer: str, penalty: str) -> float:
    """C of the warm-up loss: 0.15 under Newton steps (the preconditioner uses the same C); Taylor's 1/4 for
    the taylor approximation and for optimizers that scale their own steps (Adam, RMSprop, L1's shrinkage)."""
    return CURVATURE if uses_newton(approximation, optimizer, penalty) else 0.25


def newton_inverse(x: np.ndarray, alpha: float, intercept_index: int | None) -> np.ndarray:
    """M^-1 of one party's Newton block M = C X^T X / rows + alpha D + ridge I, from its own training rows."""
    rows, width = x.shape
    m = CURVATURE * (x.T @ x) / max(rows, 1)
    penalised = np.ones(width)
    if intercept_index is not None:
        penalised[intercept_index] = 0.0
    m = m + np.diag(alpha * penalised + NEWTON_RIDGE)
    return np.linalg.inv(m)


@dataclass
class ReplicaResult:
    """What a plaintext training ended with: each party's weights and the guest's loss per epoch."""

    guest: np.ndarray
    host: np.ndarray
    losses: list[float] = field(default_factory=list)


def _guest_intercept(x_guest: np.ndarray, intercept: bool) -> int | None:
    return x_guest.shape[1] - 1 if intercept else None


def replica(
    x_guest: np.ndarray,
    x_host: np.ndarray,
    y: np.ndarray,
    batches: Sequence[np.ndarray],
    *,
    approximation: str,
    epochs: int,
    refine_epochs: int,
    learning_rate_of: Callable[[int], float],
    alpha: float,
    intercept: bool = True,
    optimizer: str = "sgd",
    penalty: str = "l2",
    early_stopping: bool = False,
    tol: float = 0.0,
    sample_weight: np.ndarray | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> ReplicaResult:
    """Train in plaintext what the protocols compute: the same residuals, steps, phases and averaging.

    `x_guest` holds the guest's standardised features with the intercept column last (if `intercept`),
    `x_host` the host's; `batches` the row positions of each mini-batch (`design.batches`).
    """
    penalised = penalty == "l2"
    alpha_l2 = alpha if penalised else 0.0
    w = (
        [np.zeros(x_guest.shape[1]), np.zeros(x_host.shape[1])]
        if start is None
        else [s.copy() for s in start]
    )
    xs = (x_guest, x_host)
    icpt = (_guest_intercept(x_guest, intercept), None)
    newton = uses_newton(approximation, optimizer, penalty)
    inverses = [newton_inverse(x, alpha_l2, i) for x, i in zip(xs, icpt, strict=True)] if newton else []
    optimizers = [Optimizer(optimizer, penalty, alpha, i) for i in icpt]
    fourier = approximation == "fourier"
    curvature = warmup_curvature(approximation, optimizer, penalty)
    refine = min(refine_epochs, epochs) if fourier else 0
    warmup_end = epochs - refine
    losses: list[float] = []
    previous: float | None = None
    epoch, refining, refined = 0, warmup_end == 0, 0
    while True:
        total, rows_seen = 0.0, 0
        iterates: list[list[np.ndarray]] = []
        lr = learning_rate_of(epoch)
        for positions in batches:
            z = x_guest[positions] @ w[0] + x_host[positions] @ w[1]
            yb = y[positions]
            if not fourier:
                d = 0.25 * z + 0.5 - yb
                batch_loss = quadratic_loss(z, yb, 0.25)
            elif refining:
                d = fourier_sigmoid(z) - yb
                batch_loss = fourier_loss(z, yb)
            else:
                d = curvature * z + 0.5 - yb
                batch_loss = quadratic_loss(z, yb, curvature)
            total += float(np.sum(batch_loss))
            rows_seen += len(positions)
            if sample_weight is not None:
                d = d * sample_weight[positions]
            for p in (0, 1):
                gradient = xs[p][positions].T @ d / len(positions)
                if newton:
                    mask = np.ones_like(w[p])
                    if icpt[p] is not None:
                        mask[icpt[p]] = 0.0
                    w[p] = w[p] - lr * inverses[p] @ (gradient + alpha_l2 * mask * w[p])
                else:
                    w[p] = optimizers[p].step(w[p], gradient, lr)
            iterates.append([v.copy() for v in w])
        loss = total / max(rows_seen, 1)
        losses.append(loss)
        if refining:
            refined += 1
            if refined >= refine:
                break
            epoch += 1
            continue
        converged = early_stopping and previous is not None and abs(previous - loss) < tol
        previous = loss
        if converged or epoch + 1 >= warmup_end:
            if refine == 0:
                break
            refining, previous = True, None
        epoch += 1
    if fourier:
        w = [np.mean([it[p] for it in iterates], axis=0) for p in (0, 1)]
    return ReplicaResult(w[0], w[1], losses)


def replica_of(
    x_guest: np.ndarray, x_host: np.ndarray, y: np.ndarray, params: Any, rows: int
) -> ReplicaResult:
    """`replica` with `hetero_lr` params (a `HeteroLRParams` or a dict of them) and the component's batches."""
    from fedbench.ml.design import batches as make_batches

    p = params if isinstance(params, dict) else params.model_dump()
    return replica(
        x_guest,
        x_host,
        y,
        make_batches(rows, int(p.get("batch_size", 5000)), int(p.get("seed", 0))),
        approximation=str(p.get("approximation", "fourier")),
        epochs=int(p["epochs"]),
        refine_epochs=int(p.get("refine_epochs", 2)),
        learning_rate_of=lambda epoch: learning_rate(
            float(p["learning_rate"]),
            str(p.get("lr_schedule", "constant")),
            float(p.get("lr_decay", 0.0)),
            epoch,
        ),
        alpha=float(p.get("alpha", 0.01)),
        intercept=bool(p.get("fit_intercept", True)),
        optimizer=str(p.get("optimizer", "sgd")),
        penalty=str(p.get("penalty", "l2")),
        early_stopping=bool(p.get("early_stopping", True)),
        tol=float(p.get("tol", 1e-4)),
    )
