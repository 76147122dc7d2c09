"""The training driver of vertical models: the epoch/batch loop with early stopping, given a per-batch protocol.

A model plugs in three things: `step` runs one batch's protocol (under the batch's own message keys) and
returns the batch's loss where this party can compute it; `epoch_loss` turns the epoch into the loss the
deciding party judges (its batches' mean, or a figure a peer sends); `epoch_end` logs it and agrees with the
peers whether to go on (the guest decides with `EarlyStopping` and tells the others). Keys are derived as
`ctx.iter(epoch).iter(batch)`, so every round of every model has its own.

Training may end with `refine` epochs of a more accurate (and dearer) loss: they always run, after the warm-up
epochs (`epochs - refine` of them, fewer when the warm-up converges first: a "stop" during the warm-up means
"go on to the refine epochs"). Every party applies the same rule to the guest's flags, so all agree which
epoch is which; `step` and `epoch_end` are told (`refining`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedbench.federation import Context

__all__ = ["BatchStep", "EarlyStopping", "EpochEnd", "EpochLoss", "Phases", "Progress", "run_epochs"]

BatchStep = Callable[[Context, int, np.ndarray[Any, Any], bool], float | None]
"""One batch: (the batch's context, epoch, row positions, refining) -> the batch's mean loss, or None."""
EpochLoss = Callable[[Context, float | None], float | None]
"""(the epoch's context, our batches' row-weighted mean loss or None) -> the epoch's loss on this party."""
EpochEnd = Callable[[Context, int, float | None, float | None, float, bool], bool]
"""(the epoch's context, epoch, loss, previous epoch's loss of the same phase, start time, refining) -> whether
to run another epoch of this phase."""
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


class Phases:
    """Which epoch comes next, and of which phase, from the guest's flags: the rule every party applies."""

    def __init__(self, epochs: int, refine: int) -> None:
        self.refine = max(0, min(refine, epochs))
        self.warmup_end = epochs - self.refine
        self.epoch = 0
        self.refining = self.warmup_end == 0
        self._refined = 0

    def next(self, go_on: bool) -> bool:
        """Record the end of the current epoch (the guest's flag `go_on`); whether another epoch follows."""
        if self.refining:
            self._refined += 1
            if self._refined >= self.refine:
                return False
        elif not go_on or self.epoch + 1 >= self.warmup_end:
            if self.refine == 0:
                return False
            self.refining = True
        self.epoch += 1
        return True


def run_epochs(
    ctx: Context,
    *,
    epochs: int,
    batches: Sequence[np.ndarray[Any, Any]],
    step: BatchStep,
    epoch_loss: EpochLoss,
    epoch_end: EpochEnd,
    progress: Progress,
    refine: int = 0,
) -> None:
    """Run up to `epochs` epochs of `batches` through `step`, asking `epoch_end` after each whether to go on;
    the last `refine` of them (see the module docstring) always run."""
    phases = Phases(epochs, refine)
    previous: float | None = None
    while True:
        epoch, refining = phases.epoch, phases.refining
        started = time.perf_counter()
        ectx = ctx.iter(epoch)
        total, rows = 0.0, 0
        for b, positions in enumerate(batches):
            loss = step(ectx.iter(b), epoch, positions, refining)
            if loss is not None:
                total += loss * len(positions)
                rows += len(positions)
            progress(epoch, b)
        loss = epoch_loss(ectx, total / rows if rows else None)
        go_on = epoch_end(ectx, epoch, loss, previous, started, refining)
        if not phases.next(go_on):
            return
        previous = loss if phases.refining == refining else None
