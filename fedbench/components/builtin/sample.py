"""`sample`: random or stratified down/up-sampling on the guest's label, the same rows on every party.

After a PSI both parties hold their rows in the same order, so sampling by row position samples the same IDs on
every side. The parties exchange row counts (the step fails on both if they differ); the guest draws the row
positions to keep (sorted, repeated when upsampling) and sends them to the host as an int64 vector. The host
learns only that vector: which of its rows are kept and how often (see docs/protocols/statistics.md).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fedbench.components.builtin.alignment_protocol import exchange_row_counts, recv_row_plan, send_row_plan
from fedbench.components.builtin.columns import find_label
from fedbench.components.spec import Component, Port, register
from fedbench.errors import FedbenchError
from fedbench.federation import Context

__all__ = ["SampleError", "SampleParams", "draw", "sample"]


class SampleError(FedbenchError):
    """The parties' tables do not align, or the sampling asked for cannot be drawn."""

    code = "sample"


class SampleParams(BaseModel):
    """Parameters of `sample`."""

    model_config = {"extra": "forbid"}

    method: Literal["random", "stratified"] = Field(
        default="random", description="random: rows regardless of label; stratified: per class of the label"
    )
    fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=10.0,
        description="rows to keep as a share of the rows (of each class when stratified without a ratio); "
        "above 1 needs replace",
    )
    ratio: float | None = Field(
        default=None,
        gt=0.0,
        description="stratified: the target number of negatives per positive (0/1 label); none: use fraction",
    )
    replace: bool = Field(
        default=False,
        description="draw with replacement: random is a bootstrap, stratified upsamples the smaller side",
    )
    seed: int = Field(default=0, ge=0, description="random seed of the draw")
    label: str | None = Field(
        default=None, description="the guest's label column; none: 'default' or 'y' if present"
    )


sample = register(
    Component(
        name="sample",
        version="1",
        params=SampleParams,
        roles=("guest", "host"),
        use="train",
        inputs=(Port("data", "table", "each party's rows, aligned (e.g. by PSI)"),),
        outputs=(
            Port("data", "table", "our sampled rows, the same positions on every party"),
            Port("metrics", "metrics", "rows and class counts before and after (guest only)"),
        ),
        description="Down- or up-sample aligned rows, randomly or per class, the same rows on every party.",
    )
)


def _label_column(table: pd.DataFrame, label: str | None) -> str | None:
    return find_label(table, label, SampleError)


def _resize(rng: np.random.Generator, rows: np.ndarray, target: int, replace: bool) -> np.ndarray:
    """`target` positions from `rows`: a draw without replacement when fewer, every row plus extra draws
    with replacement when more (only with `replace`)."""
    if target <= len(rows):
        return rng.choice(rows, size=target, replace=False) if len(rows) else rows
    if not replace:
        raise SampleError(
            f"keeping {target} of {len(rows)} rows needs upsampling: set replace=True, or a smaller "
            "fraction or ratio"
        )
    return np.concatenate([rows, rng.choice(rows, size=target - len(rows), replace=True)])


def draw(
    n: int, params: SampleParams, labels: Any = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """The sorted row positions to keep (with repeats when upsampling) out of `n`, drawn with `rng` (the
    guest's private generator in a run; the public `seed` alone when none is given)."""
    rng = np.random.default_rng(params.seed) if rng is None else rng
    every = np.arange(n, dtype=np.int64)
    if params.method == "random":
        target = int(np.floor(n * params.fraction + 0.5))
        if params.replace:
            return np.sort(rng.choice(every, size=target, replace=True)) if n else every
        return np.sort(_resize(rng, every, target, False))
    if labels is None:
        raise SampleError("stratified sampling needs the guest's label: name it with `label`")
    values = pd.Series(labels)
    if params.ratio is None:
        groups, _ = pd.factorize(values, use_na_sentinel=False)
        parts = [
            _resize(
                rng,
                every[groups == g],
                int(np.floor((groups == g).sum() * params.fraction + 0.5)),
                params.replace,
            )
            for g in np.unique(groups)
        ]
        return np.sort(np.concatenate(parts)) if parts else every
    if not values.isin([0, 1]).all():
        raise SampleError(
            "a stratified ratio needs a 0/1 label; use ratio=None to sample each class by fraction"
        )
    positives, negatives = every[values.to_numpy() == 1], every[values.to_numpy() == 0]
    if not len(positives) or not len(negatives):
        raise SampleError("a stratified ratio needs both classes in the label")
    current = len(negatives) / len(positives)
    # Without replacement the larger side shrinks to the ratio; with replacement the smaller side grows to it.
    if (params.ratio <= current) != params.replace:
        negatives = _resize(
            rng, negatives, int(np.floor(params.ratio * len(positives) + 0.5)), params.replace
        )
    else:
        positives = _resize(
            rng, positives, max(1, int(np.floor(len(negatives) / params.ratio + 0.5))), params.replace
        )
    return np.sort(np.concatenate([positives, negatives]))


def _check_rows(own: int, peer: int, peer_role: str) -> None:
    if own != peer:
        raise SampleError(
            f"the parties' tables are not aligned: we hold {own} rows, the {peer_role} {peer}; "
            "sample the outputs of the same PSI"
        )


def _counts(labels: pd.Series | None) -> dict[str, int]:
    if labels is None:
        return {}
    counts = labels.value_counts(dropna=False).sort_index()
    return {str(k): int(v) for k, v in counts.items()}


@sample.role("guest")
def guest(ctx: Context, params: SampleParams) -> None:
    """Check the row counts match, draw the positions, send them to the host, write our rows and counts."""
    table = ctx.input("data")
    host = ctx.peer("host")
    _check_rows(len(table), exchange_row_counts(host, len(table)), "host")
    label = _label_column(table, params.label)
    labels = table[label] if label is not None else None
    # keyed with our private key: from the public seed alone, the host could test guesses of our labels
    rng = ctx.private_rng("sample", params.seed)
    positions = draw(len(table), params, None if labels is None else labels.to_numpy(), rng)
    send_row_plan(host, "positions", positions)
    kept = table.iloc[positions].reset_index(drop=True)
    ctx.output("data", kept)
    after = kept[label] if label is not None else None
    ctx.output(
        "metrics",
        {
            "label": label,
            "rows_before": len(table),
            "rows_after": len(kept),
            "before": _counts(labels),
            "after": _counts(after),
        },
    )
    ctx.metrics.log("rows_after", float(len(kept)))
    ctx.progress(1.0, f"kept {len(kept)} of {len(table)} rows")


@sample.role("host")
def host(ctx: Context, params: SampleParams) -> None:
    """Check the row counts match, receive the guest's positions, write our rows at those positions."""
    table = ctx.input("data")
    guest = ctx.peer("guest")
    _check_rows(len(table), exchange_row_counts(guest, len(table)), "guest")
    positions = recv_row_plan(guest, "positions")
    if (
        positions.ndim != 1
        or positions.dtype.kind not in "iu"
        or (len(positions) and (positions.min() < 0 or positions.max() >= len(table)))
    ):
        raise SampleError(f"the guest's row positions do not fit our {len(table)} rows")
    kept = table.iloc[positions].reset_index(drop=True)
    ctx.output("data", kept)
    ctx.progress(1.0, f"kept {len(kept)} of {len(table)} rows")
