"""Which rows and features a round of boosting uses: row subsample, GOSS, feature subsample; all seeded.

Each round draws from its own generator (seeded by the params' seed and the round), so a run is reproducible
and the federated parties can agree on a draw by sharing only the seed. Row positions come back sorted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fedbench.ml.trees.params import TreeParams

__all__ = ["feature_sample", "goss_sample", "round_rng", "round_rows", "row_subsample"]


def round_rng(seed: int, round: int, purpose: int) -> np.random.Generator:
    """The generator of one round's draw (`purpose` 0: rows, 1: features), independent of the others."""
    return np.random.default_rng([seed, round, purpose])


def row_subsample(rows: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A uniform draw without replacement of round(rate * rows) row positions (at least one); all if rate is 1."""
    if rate >= 1.0:
        return np.arange(rows)
    take = max(1, int(round(rate * rows)))
    return np.sort(rng.choice(rows, size=take, replace=False))


def goss_sample(
    magnitude: np.ndarray, top_rate: float, other_rate: float, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient-based one-side sampling: (row positions, weights). The int(top_rate * n) rows of largest
    `magnitude` (|g|, summed over classes) get weight 1; int(other_rate * n) rows drawn from the rest get
    (1 - top_rate) / other_rate, so that their sums estimate the sums of all the rest. At least one row is kept."""
    n = len(magnitude)
    top = int(top_rate * n)
    other = int(other_rate * n) or int(top == 0 and n > 0)
    order = np.argsort(-np.asarray(magnitude, dtype=np.float64), kind="stable")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    drawn = rng.choice(order[top:], size=min(other, n - top), replace=False)
    rows = np.concatenate([order[:top], drawn])
    weights = np.concatenate([np.ones(top), np.full(len(drawn), (1.0 - top_rate) / other_rate)])
    keep = np.argsort(rows)
    return rows[keep], weights[keep]


def feature_sample(pool: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """round(rate * len(pool)) features of `pool` (at least one) drawn without replacement, sorted."""
    if rate >= 1.0 or len(pool) == 0:
        return np.sort(pool)
    take = max(1, int(round(rate * len(pool))))
    return np.sort(rng.choice(pool, size=take, replace=False))


def round_rows(params: TreeParams, round: int, grad: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One round's row positions and weights: all rows, a subsample or a GOSS draw (by |g|), drawn from `seed`.

    `seed` is the params' seed in the plaintext booster; the federated guest passes a row seed only it can
    derive, so the host, which sees the drawn rows, cannot replay the draw to tell GOSS's top rows apart.
    """
    rng = round_rng(seed, round, 0)
    if params.goss is not None:
        return goss_sample(np.abs(grad).sum(axis=1), params.goss.top_rate, params.goss.other_rate, rng)
    rows = row_subsample(len(grad), params.subsample, rng)
    return rows, np.ones(len(rows))
