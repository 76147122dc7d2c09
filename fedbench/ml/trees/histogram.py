"""Per-node histograms: for each feature and bin, the sums of g and h and the row count of a node's rows.

Built for several nodes at once with one `np.bincount` over (node, feature, bin) indices, in feature chunks so
memory stays bounded. Of two siblings only the smaller is built: the other is its parent minus it (`-`), which
is exact for counts and to rounding for sums. In the federated version the host builds the same sums over
encrypted g and h for its features, and the guest decrypts them into a `Histogram`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Histogram", "build_histograms"]

_CHUNK_CELLS = 1 << 22
"""Rows x features indexed per bincount call (32 MiB of int64 indices)."""


@dataclass(frozen=True)
class Histogram:
    """One node's sums per feature and slot (bins, then the missing slot): arrays of features x slots."""

    grad: np.ndarray
    hess: np.ndarray
    count: np.ndarray

    def __sub__(self, other: Histogram) -> Histogram:
        """The sibling's histogram: this (the parent's) minus one child's."""
        return Histogram(self.grad - other.grad, self.hess - other.hess, self.count - other.count)


def build_histograms(
    codes: np.ndarray, missing_bin: int, grad: np.ndarray, hess: np.ndarray, node_rows: Sequence[np.ndarray]
) -> list[Histogram]:
    """The histogram of each node whose row positions are in `node_rows`, from the bin `codes` (rows x
    features, slots 0..missing_bin) and per-row `grad` and `hess` (already weighted by any row sampling)."""
    features = codes.shape[1]
    slots = missing_bin + 1
    nodes = len(node_rows)
    rows = (
        np.concatenate([np.asarray(r, dtype=np.int64) for r in node_rows]) if nodes else np.empty(0, np.int64)
    )
    owner = np.repeat(np.arange(nodes, dtype=np.int64), [len(r) for r in node_rows])
    sums = np.zeros((3, nodes, features, slots))
    g, h = grad[rows], hess[rows]
    step = max(1, _CHUNK_CELLS // max(len(rows), 1))
    for start in range(0, features, step):
        stop = min(start + step, features)
        width = stop - start
        cell = (owner[:, None] * width + np.arange(width)[None, :]) * slots + codes[rows, start:stop]
        flat = cell.ravel()
        size = nodes * width * slots
        for which, weights in enumerate((g, h, None)):
            spread = None if weights is None else np.broadcast_to(weights[:, None], cell.shape).ravel()
            sums[which, :, start:stop, :] = np.bincount(flat, weights=spread, minlength=size).reshape(
                nodes, width, slots
            )
    return [Histogram(sums[0, n], sums[1, n], sums[2, n].astype(np.int64)) for n in range(nodes)]
