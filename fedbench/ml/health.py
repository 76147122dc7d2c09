"""Model health: whether a training went wrong, judged by each party from the metrics it computed itself.

`check_training` reads a training's loss per epoch, its weights and (for the guest) its AUC and returns a
`Health`: `problems` make the step fail (a non-finite or exploding loss, non-finite weights, an AUC at or
below chance); `warnings` let it succeed but are shown with the result (a loss that did not fall, an AUC
barely above chance, a loss that stayed where all-zero weights put it, a loss still falling fast when five or
more epochs ran out, or five or more warm-up epochs before refine epochs). Every sentence names what was seen
and the parameter to change, with a value to try, in words a business user reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fedbench.errors import FedbenchError

__all__ = [
    "CHANCE_AUC",
    "EXPLODED_LOSS",
    "GROWTH_FACTOR",
    "Health",
    "LEARNED_NOTHING",
    "MIN_EPOCHS_JUDGED",
    "ModelHealthError",
    "REFINE_METRIC",
    "STILL_FALLING",
    "WEAK_AUC",
    "check_training",
    "check_trees",
    "safer_learning_rate",
]

REFINE_METRIC = "refine_from"
"""The metric `hetero_lr` logs at its first refine epoch (its value: that epoch). From there on its loss is the
logistic loss, where the warm-up's was the quadratic one it trains on, so the curve may step up there: charts
mark the change (`ui.plots.loss_curve`), and the checks below judge each phase on its own."""

GROWTH_FACTOR = 10.0
"""A last-epoch loss this many times the first epoch's means the training diverged."""
EXPLODED_LOSS = 100.0
"""A loss above this diverged whatever the first epoch's was: the (Taylor) log-loss of all-zero weights is
ln 2 = 0.69 and training only lowers it, so 100 means scores far outside any sensible range."""
CHANCE_AUC = 0.5
"""An AUC at or below this ranks rows no better than a coin: the model is unusable."""
WEAK_AUC = 0.55
"""An AUC below this is barely better than chance: the model is kept, with a warning."""
STILL_FALLING = 0.02
"""A loss that fell by more than this share in the last epoch had not settled when the epochs ran out."""
MIN_EPOCHS_JUDGED = 5
"""Fewer epochs are a quick try whose loss always still falls: a still-falling loss is warned of from 5 on."""
LEARNED_NOTHING = 0.99 * math.log(2.0)
"""A final loss at or above this is (within 1%) what all-zero weights give: the model learned almost nothing."""


class ModelHealthError(FedbenchError):
    """A training ended with a model that must not be used: its loss diverged or it ranks no better than chance."""

    code = "model_health"


@dataclass
class Health:
    """What a party concluded of its training: `problems` fail the step, `warnings` are shown with it."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the model may be used (it may still carry warnings)."""
        return not self.problems

    def raise_if_broken(self) -> None:
        """Raise `ModelHealthError` with every problem when the model must not be used."""
        if self.problems:
            raise ModelHealthError(" ".join(self.problems))


def _show(value: float) -> str:
    """A loss as a person reads it: 0.59, 0.693, 250, 4.1e+07."""
    if not math.isfinite(value):
        return "not a number" if math.isnan(value) else "infinite"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.2g}"


def safer_learning_rate(learning_rate: float) -> float:
    """A learning rate to suggest after a divergence: 0.1, or a tenth of the one used if that is smaller."""
    return 0.1 if learning_rate > 0.1 else float(f"{learning_rate / 10:.1g}")


def _loss_health(
    losses: Sequence[float],
    learning_rate: float,
    epochs: int,
    name: str,
    health: Health,
    refine_from: int | None = None,
) -> None:
    if not losses:
        return
    first, last = float(losses[0]), float(losses[-1])
    lower = f"lower learning_rate, e.g. {safer_learning_rate(learning_rate):g}"
    bad = next((float(v) for v in losses if not math.isfinite(float(v))), None)
    if bad is not None:
        health.problems.append(
            f"The {name} became {_show(bad)} during training: the weights diverged; {lower}."
        )
        return
    # hetero_lr's refine epochs compute another loss than its warm-up: rise and fall are judged per phase
    split = refine_from is not None and 0 < refine_from < len(losses)
    phases = [losses[:refine_from], losses[refine_from:]] if split else [losses]
    worst = max(float(v) for v in losses)
    grown = next(
        (p for p in phases if len(p) > 1 and float(p[0]) > 0 and float(p[-1]) > GROWTH_FACTOR * float(p[0])),
        None,
    )
    if worst > EXPLODED_LOSS or grown is not None:
        start, end = (float(grown[0]), float(grown[-1])) if grown is not None else (first, last)
        peak = end if end > start else worst
        grew = f"grew from {_show(start)} to {_show(peak)}" if peak > start else f"reached {_show(peak)}"
        health.problems.append(f"The {name} {grew}: the training diverged; {lower}.")
        return
    if len(losses) < 2:
        return
    flat = next((p for p in phases if len(p) > 1 and float(p[-1]) >= float(p[0])), None)
    if flat is not None:
        health.warnings.append(
            f"The {name} did not fall ({_show(float(flat[0]))} at the first epoch, {_show(float(flat[-1]))} at "
            f"the last): {lower}, or check that the features relate to the label."
        )
        return
    if last >= LEARNED_NOTHING:
        raise_it = (
            f"raise learning_rate (e.g. {min(0.5, max(0.15, learning_rate * 10)):g}) or epochs"
            if learning_rate < 0.5
            else "raise epochs"
        )
        health.warnings.append(
            f"The model learned almost nothing: its {name} ended at {_show(last)}, about what a model without "
            f"features gives ({math.log(2.0):.2f}); {raise_it}, or check that the features relate to the label."
        )
        return
    if refine_from is not None:
        # the refine epochs are a fixed correction on another loss: judge whether the warm-up had settled
        epochs -= len(losses) - refine_from
        losses = losses[:refine_from]
        if len(losses) < 2:
            return
        last = float(losses[-1])
    previous = float(losses[-2])
    still_falling = previous > 0 and (previous - last) / previous > STILL_FALLING
    if epochs >= MIN_EPOCHS_JUDGED and len(losses) >= epochs and still_falling:
        health.warnings.append(
            f"The {name} was still falling fast when the {epochs} epochs ran out "
            f"({_show(previous)} to {_show(last)} in the last one): the model may be under-trained; "
            f"raise epochs, e.g. {min(1000, max(epochs * 2, epochs + 5))}."
        )


def check_training(
    *,
    losses: Sequence[float] | dict[str, Sequence[float]] | None,
    learning_rate: float,
    epochs: int,
    weights: np.ndarray | None = None,
    auc: float | None = None,
    auc_rows: str = "validation",
    refine_from: int | dict[str, int | None] | None = None,
) -> Health:
    """Judge one party's training from what it computed itself.

    `losses`: the loss per epoch (a dict of them per class, one-vs-rest); `epochs`: the most epochs allowed;
    `weights`: our weights; `auc`: the binary model's AUC on `auc_rows` ("validation" or "training");
    `refine_from`: the first of hetero_lr's refine epochs (a dict of them per class), which end a training on
    another loss than its warm-up: a loss that grew or did not fall is judged within each phase, one "still
    falling" on the warm-up epochs.
    """
    health = Health()
    per_class = losses if isinstance(losses, dict) else {"": losses or []}
    for k, values in per_class.items():
        name = f"loss of class {k}" if k else "loss"
        start = refine_from.get(k) if isinstance(refine_from, dict) else refine_from
        _loss_health(list(values), learning_rate, epochs, name, health, start)
    if weights is not None and not np.all(np.isfinite(np.asarray(weights, dtype=np.float64))):
        health.problems.append(
            "Some of the model's weights are not numbers: the training diverged; "
            f"lower learning_rate, e.g. {safer_learning_rate(learning_rate):g}."
        )
    if auc is not None and health.ok:
        if not math.isfinite(auc) or auc <= CHANCE_AUC:
            health.problems.append(
                f"The model's AUC on the {auc_rows} rows is {_show(auc)}, no better than chance: it ranks rows "
                f"no better than a coin toss. Lower learning_rate (e.g. {safer_learning_rate(learning_rate):g}), "
                "or check that the label and the features are the right columns."
            )
        elif auc < WEAK_AUC:
            health.warnings.append(
                f"The model's AUC on the {auc_rows} rows is {auc:.3f}, barely better than chance: check the "
                "features and the label before using it."
            )
    return health


def check_trees(
    *, losses: Sequence[float], splits: int, auc: float | None = None, auc_rows: str = "validation"
) -> Health:
    """Judge a boosted-tree training from the guest's own figures.

    `losses`: the training loss after each tree; `splits`: how many splits the kept trees make; `auc`: the
    binary model's AUC on `auc_rows`. Trees without a split give every row the same score, so they fail the
    step as a chance-level AUC does; an AUC barely above chance is a warning.
    """
    health = Health()
    if any(not math.isfinite(v) for v in losses):
        health.problems.append(
            "The training loss is not a number: check the label and the features for extreme values."
        )
    if splits == 0:
        health.problems.append(
            "The trees do not split on any feature, so every customer would get the same score: lower gamma, "
            "min_child_weight or min_rows_per_leaf, or train on more rows."
        )
    if auc is not None and health.ok:
        if not math.isfinite(auc) or auc <= CHANCE_AUC:
            health.problems.append(
                f"The model's AUC on the {auc_rows} rows is {_show(auc)}, no better than chance: it ranks rows "
                "no better than a coin toss. Check that the label and the features are the right columns."
            )
        elif auc < WEAK_AUC:
            health.warnings.append(
                f"The model's AUC on the {auc_rows} rows is {auc:.3f}, barely better than chance: check the "
                "features and the label before using it."
            )
    return health
