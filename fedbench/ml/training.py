"""The training driver of vertical models: the epoch/batch loop with early stopping, given a per-batch protocol.

A model plugs in three things: `step` runs one batch's protocol (under the batch's own message keys) and
returns the batch's loss where this party can compute it; `epoch_loss` turns the epoch into the loss the
deciding party judges (its batches' mean, or a figure a peer sends); `epoch_end` logs it and agrees with the
peers whether to go on (the guest decides with `EarlyStopping` and tells the others). Keys are derived as
`ctx.iter(epoch).iter(batch)`, so every round of every model has its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.federation import Context

__all__ = ["BatchStep", "EarlyStopping", "EpochEnd", "EpochLoss", "Progress", "run_epochs"]

BatchStep = Callable[[Context, int, np.ndarray[Any, Any]], float | None]
"""One batch: (the batch's context, epoch, row positions) -> the batch's mean loss, or None on this party."""
EpochLoss = Callable[[Context, float | None], float | None]
"""(the epoch's context, our batches' row-weighted mean loss or None) -> the epoch's loss on this party."""
EpochEnd = Callable[[Context, int, float | None, float | None, float], bool]
"""(the epoch's context, epoch, loss, previous epoch's loss, start time) -> whether to run another epoch."""
Progress = Callable[[int, int], None]
"""(epoch, batch) once each batch is done."""


@dataclass(frozen=True)
class EarlyStopping:
    """When training stops: after `epochs`, or earlier once the loss moved less than `tol` in an epoch."""

    epochs: int
    early_stopping: bool
    tol: float

    def go_on(self, epoch: int, loss: float, previous: float | None) -> bool:
        """Whether another epoch follows the one numbered `epoch` that ended with `loss`."""
        converged = self.early_stopping and previous is not None and abs(previous - loss) < self.tol
        return not converged and epoch + 1 < self.epochs


def run_epochs(
    ctx: Context,
    *,
    epochs: int,
    batches: Sequence[np.ndarray[Any, Any]],
    step: BatchStep,
    epoch_loss: EpochLoss,
    epoch_end: EpochEnd,
    progress: Progress,
) -> None:
    """Run up to `epochs` epochs of `batches` through `step`, asking `epoch_end` after each whether to go on."""
    previous: float | None = None
    for epoch in range(epochs):
        started = time.perf_counter()
        ectx = ctx.iter(epoch)
        total, rows = 0.0, 0
        for b, positions in enumerate(batches):
            loss = step(ectx.iter(b), epoch, positions)
            if loss is not None:
                total += loss * len(positions)
                rows += len(positions)
            progress(epoch, b)
        loss = epoch_loss(ectx, total / rows if rows else None)
        if not epoch_end(ectx, epoch, loss, previous, started):
            return
        previous = loss
