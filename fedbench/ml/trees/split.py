"""The best split of a node from its histograms, the leaf value, and which rows a split sends left.

For every feature and every cut after bin k, the left child's sums are cumulative bin sums, plus the missing
slot when missing values go left; the right child's are the node's totals minus them. Both directions are
tried and, as in XGBoost, missing values go right unless left is strictly better. The gain is XGBoost's:
G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda) - G^2/(H+lambda) (no factor 1/2), and a split is made only if it
exceeds 1e-6 and is at least `gamma`, and both children have hessian sums of at least `min_child_weight`
and at least `min_rows_per_leaf` rows. Ties go to the lower feature, then missing right, then the lower bin,
and gains within `TIE_RTOL` of the best count as ties: two features that cut a node's rows the same way have
the same gain, and rounding (the host's fixed-point sums in SecureBoost, the order of float sums) must not pick
between them, or the federated trees would part from the plaintext booster's on rows the split does not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedbench.ml.trees.histogram import Histogram
from fedbench.ml.trees.params import TreeParams

__all__ = ["MIN_GAIN", "TIE_RTOL", "Split", "best_split", "goes_left", "leaf_value", "score"]

MIN_GAIN = 1e-6
"""A split must gain more than this (XGBoost's kRtEps), so that rounding never makes a split."""

TIE_RTOL = 1e-8
"""Gains this close to the best (relative to it) tie with it. The host's 40-bit fixed-point sums move a gain by
about 1e-11 of itself; a real difference this small changes nothing a model does."""


@dataclass(frozen=True)
class Split:
    """A node's chosen split: rows with `feature`'s bin <= `bin` go left, missing ones left iff `default_left`."""

    feature: int
    bin: int
    default_left: bool
    gain: float


def score(grad: np.ndarray | float, hess: np.ndarray | float, reg_lambda: float) -> np.ndarray:
    """G^2 / (H + lambda), 0 where H + lambda is 0 (an empty side with lambda 0)."""
    g, denominator = np.asarray(grad, dtype=np.float64), np.asarray(hess, dtype=np.float64) + reg_lambda
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, g * g / safe, 0.0)


def leaf_value(grad: float, hess: float, params: TreeParams) -> float:
    """-G / (H + lambda), shrunk by the learning rate (0 where H + lambda is 0)."""
    denominator = hess + params.reg_lambda
    return float(-grad / denominator * params.learning_rate) if denominator > 0 else 0.0


def best_split(
    hist: Histogram,
    totals: tuple[float, float, int],
    bin_counts: np.ndarray,
    allowed: np.ndarray,
    params: TreeParams,
) -> Split | None:
    """The best split of a node with histogram `hist` and sums `totals` (G, H, rows) over the features where
    `allowed` is true (each with `bin_counts` bins of present values), or None if no split qualifies."""
    total_g, total_h, total_n = totals
    bins = hist.grad.shape[1] - 1
    sides = []
    for sums in (hist.grad, hist.hess, hist.count):
        present = np.cumsum(sums[:, :bins], axis=1)
        sides.append(np.stack([present, present + sums[:, bins : bins + 1]], axis=1))
    left_g, left_h, left_n = sides
    right_g, right_h, right_n = total_g - left_g, total_h - left_h, total_n - left_n
    lam = params.reg_lambda
    gain = score(left_g, left_h, lam) + score(right_g, right_h, lam) - score(total_g, total_h, lam)
    valid = (
        allowed[:, None, None]
        & (np.arange(bins)[None, None, :] < np.asarray(bin_counts)[:, None, None])
        & (left_h >= params.min_child_weight)
        & (right_h >= params.min_child_weight)
        & (left_n >= params.min_rows_per_leaf)
        & (right_n >= params.min_rows_per_leaf)
    )
    gain = np.where(valid, gain, -np.inf)
    top = float(gain.max())
    if not top > MIN_GAIN or top < params.gamma:
        return None
    best = int(np.argmax(gain >= top - TIE_RTOL * top))
    feature, direction, bin = np.unravel_index(best, gain.shape)
    value = float(gain.flat[best])
    return Split(int(feature), int(bin), bool(direction == 1), value)


def goes_left(
    codes: np.ndarray, bin: int | np.ndarray, default_left: bool | np.ndarray, missing_bin: int
) -> np.ndarray:
    """Which of the rows whose bin indices (of the split's feature) are `codes` go to the left child; `bin`
    and `default_left` may also be per row (one tree level walked at once)."""
    return np.where(codes == missing_bin, default_left, codes <= bin)
